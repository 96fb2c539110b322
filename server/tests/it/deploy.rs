//! The deploy files: `render.yaml` is a Blueprint Render accepts and agrees with the server's
//! flags, and the image's entrypoint works as the `Dockerfile` runs it. No container engine
//! can start containers on this machine (podman installs, but its runtimes cannot set up
//! cgroups here), so the image test runs the binary exactly as the image would: copied out of
//! the build tree, as uid/gid 10001, with only the image's environment, PORT from outside, and
//! the image's own HEALTHCHECK command.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use clap::Parser;
use roomcast_server::Config;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::within;

fn workspace_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(workspace_file(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn service<'a>(blueprint: &'a Value, kind: &str) -> &'a Value {
    blueprint["services"]
        .as_array()
        .and_then(|services| services.iter().find(|s| s["type"] == kind))
        .unwrap_or_else(|| panic!("render.yaml has a {kind} service"))
}

#[test]
fn render_yaml_is_a_docker_web_service_with_secrets_key_value_and_a_matched_drain() {
    let blueprint: Value =
        serde_saphyr::from_str(&read("render.yaml")).expect("render.yaml parses");
    let web = service(&blueprint, "web");
    for key in [
        "name",
        "runtime",
        "dockerfilePath",
        "healthCheckPath",
        "envVars",
    ] {
        assert!(!web[key].is_null(), "the web service sets {key}");
    }
    assert_eq!(web["runtime"], "docker");
    assert_eq!(web["healthCheckPath"], "/readyz");
    let dockerfile = web["dockerfilePath"].as_str().unwrap_or_default();
    assert!(workspace_file(dockerfile).is_file(), "{dockerfile} exists");

    let env: HashMap<&str, &Value> = web["envVars"]
        .as_array()
        .expect("envVars is a list")
        .iter()
        .map(|var| (var["key"].as_str().expect("every env var has a key"), var))
        .collect();
    for secret in ["ROOMCAST_API_KEY", "ROOMCAST_TOKEN_SECRET"] {
        assert_eq!(env[secret]["generateValue"], true, "{secret} is generated");
    }
    let redis = &env["ROOMCAST_REDIS_URL"]["fromService"];
    assert_eq!(redis["type"], "keyvalue");
    assert_eq!(redis["property"], "connectionString");
    let key_value = service(&blueprint, "keyvalue");
    assert_eq!(
        key_value["name"], redis["name"],
        "the URL comes from the Key Value instance"
    );
    assert!(
        key_value["ipAllowList"].is_array(),
        "Render requires ipAllowList"
    );

    // Every literal ROOMCAST_* value is one the server accepts, as its flag.
    let mut args = vec!["roomcast-server".to_owned()];
    for (key, var) in &env {
        if let (Some(flag), Some(value)) = (key.strip_prefix("ROOMCAST_"), var["value"].as_str()) {
            args.push(format!(
                "--{}={value}",
                flag.to_lowercase().replace('_', "-")
            ));
        }
    }
    let config = Config::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert_eq!(config.host.to_string(), "0.0.0.0");
    assert!(
        !config.drain_window.is_zero(),
        "deploys drain over a window"
    );
    let config = config
        .validate()
        .expect("the Blueprint's settings are valid, the grace covering the drain window")
        .into_inner();
    let platform_deadline = web["maxShutdownDelaySeconds"]
        .as_u64()
        .expect("maxShutdownDelaySeconds is set");
    assert!(platform_deadline <= 300, "Render allows at most 300 s");
    assert!(
        config.shutdown_grace.as_secs() < platform_deadline,
        "the server exits ({:?}) before Render kills it ({platform_deadline} s)",
        config.shutdown_grace
    );
}

/// The runtime stage of the Dockerfile: its `ENV`, `USER` and `ENTRYPOINT`, and its
/// `HEALTHCHECK` command.
struct RuntimeStage {
    env: Vec<(String, String)>,
    user: String,
    entrypoint: Vec<String>,
    healthcheck: Vec<String>,
}

/// Reads the last stage of a Dockerfile, joining `\`-continued lines. Only the instructions
/// this project's Dockerfile uses are understood; anything else is ignored.
fn runtime_stage(dockerfile: &str) -> RuntimeStage {
    let joined = dockerfile.replace("\\\n", " ");
    let stages: Vec<&str> = joined.split("\nFROM ").collect();
    assert!(
        stages.len() >= 4,
        "multi-stage: chef, planner, builder, runtime"
    );
    let builder = stages
        .iter()
        .find(|s| s.contains("AS builder"))
        .expect("a builder stage");
    let cook = builder
        .find("cargo chef cook")
        .expect("dependencies are cooked");
    let copy = builder.find("COPY . .").expect("the sources are copied");
    assert!(
        cook < copy,
        "dependencies build in a layer before the sources arrive"
    );
    let last = stages.last().copied().unwrap_or_default();
    let mut stage = RuntimeStage {
        env: Vec::new(),
        user: String::new(),
        entrypoint: Vec::new(),
        healthcheck: Vec::new(),
    };
    for line in last.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (key, value) = pair.split_once('=').expect("ENV KEY=VALUE");
                stage.env.push((key.to_owned(), value.to_owned()));
            }
        } else if let Some(rest) = line.strip_prefix("USER ") {
            rest.trim().clone_into(&mut stage.user);
        } else if let Some(rest) = line.strip_prefix("ENTRYPOINT ") {
            stage.entrypoint = serde_json::from_str(rest).expect("exec-form ENTRYPOINT");
        } else if let Some(rest) = line.strip_prefix("HEALTHCHECK ") {
            let command = rest.split_once("CMD ").expect("HEALTHCHECK CMD").1;
            stage.healthcheck = serde_json::from_str(command).expect("exec-form HEALTHCHECK");
        }
    }
    assert!(
        last.contains("org.opencontainers.image.title"),
        "OCI labels"
    );
    stage
}

#[tokio::test]
async fn the_image_entrypoint_serves_on_port_as_a_non_root_user_and_passes_its_healthcheck() {
    let image = runtime_stage(&read("Dockerfile"));
    let (uid, gid) = image.user.split_once(':').expect("USER uid:gid");
    assert_ne!(uid, "0", "the image does not run as root");
    assert_eq!(
        image.entrypoint,
        ["/usr/local/bin/roomcast-server"],
        "the entrypoint is the server"
    );

    // As the image's COPY does: the binary alone, outside the build tree.
    let installed = std::env::temp_dir().join(format!("roomcast-image-{}", std::process::id()));
    std::fs::create_dir_all(&installed).expect("install directory");
    let binary = installed.join("roomcast-server");
    std::fs::copy(env!("CARGO_BIN_EXE_roomcast-server"), &binary).expect("install the binary");

    let mut command = if is_root() {
        let mut as_image_user = Command::new("setpriv");
        as_image_user.args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
        ]);
        as_image_user.arg(&binary);
        as_image_user
    } else {
        // Not root: cannot become uid 10001, but already runs as a non-root user.
        Command::new(&binary)
    };
    command
        .env_clear()
        .envs(image.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        // The platform sets PORT (Render: 10000); 0 here, so parallel tests never collide.
        .env("PORT", "0")
        .current_dir("/")
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut server = command
        .spawn()
        .expect("start the server as the image would");
    let stderr = server.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let address = within("the listening log line", async {
        while let Some(line) = lines.next_line().await.expect("read the log") {
            if let Some(rest) = line.split("address=").nth(1) {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await;
    assert!(
        address.starts_with("0.0.0.0:"),
        "listens on every interface: {address}"
    );
    let port = address.rsplit(':').next().unwrap_or_default().to_owned();

    let pid = server.id().expect("the server runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let running_uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    if is_root() {
        assert_eq!(running_uid, uid, "runs as the image's user");
    }
    assert_ne!(running_uid, "0", "never as root");

    let (program, args) = image
        .healthcheck
        .split_first()
        .expect("a healthcheck command");
    let health = within(
        "the healthcheck",
        Command::new(program).args(args).env("PORT", &port).status(),
    )
    .await
    .expect("run the healthcheck");
    assert!(
        health.success(),
        "the image's HEALTHCHECK passes on a ready server"
    );

    let signalled = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .expect("kill");
    assert!(signalled.success());
    let exit = within("the server to exit after SIGTERM", server.wait())
        .await
        .expect("wait");
    assert_eq!(exit.code(), Some(0));
    let _removed = std::fs::remove_dir_all(&installed);
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|ids| ids.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

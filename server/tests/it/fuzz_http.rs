//! Fuzzing the HTTP JSON bodies over real HTTP: the publish, broadcast and send-test POSTs get
//! arbitrary bytes, mutated valid bodies and valid shapes with fields of the wrong type. Each
//! answer is a success or a 4xx with the JSON error envelope; never a 5xx, never a dropped
//! connection (a panic in a handler). Bounded: a few hundred requests on loopback, proptest
//! shrinking any failure to its smallest body.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use roomcast_protocol::ErrorEnvelope;
use roomcast_server::Config;
use serde_json::{Value, json};

use crate::support::TestServer;

/// Cases per target (its three kinds of body mixed): enough to reach each decoder's branches,
/// few enough for the nextest tier (the whole test runs in a few seconds).
const CASES_PER_TARGET: u32 = 144;

/// The routes that read a JSON body, and a valid body for each.
fn targets() -> [(&'static str, Value); 3] {
    [
        (
            "api/rooms/lobby/messages",
            json!({"message": "hi", "user": "backend", "idempotency_key": "k1"}),
        ),
        (
            "api/broadcast",
            json!({"rooms": ["lobby", "other"], "message": "hi", "user": "backend"}),
        ),
        ("chat/lobby/send-test/", json!({"message": "hi"})),
    ]
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One edit of a byte string: overwrite, insert, delete or cut it short.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Set(at, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 1..6)
}

fn mutate(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        match *edit {
            Edit::Set(at, b) if len > 0 => bytes[at % len] = b,
            Edit::Insert(at, b) => bytes.insert(at % (len + 1), b),
            Edit::Delete(at) if len > 0 => {
                bytes.remove(at % len);
            }
            Edit::Truncate(at) => bytes.truncate(at % (len + 1)),
            _ => {}
        }
    }
    bytes
}

/// A body for target `index`: arbitrary bytes, a mutated valid body, or the valid body with
/// one field replaced by any JSON value.
fn bodies(index: usize) -> impl Strategy<Value = Vec<u8>> {
    let valid = targets()[index].1.clone();
    let fields: Vec<String> = valid
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let bytes = valid.to_string().into_bytes();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        edits().prop_map(move |e| mutate(bytes.clone(), &e)),
        (prop::sample::select(fields), any_json()).prop_map(move |(field, value)| {
            let mut body = valid.clone();
            body[field.as_str()] = value;
            body.to_string().into_bytes()
        }),
    ]
}

/// Posts `body` to `path`; a failed case says what came back.
async fn check(server: &TestServer, path: &str, body: Vec<u8>) -> Result<(), TestCaseError> {
    let response = server
        .http()
        .post(server.http_url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer (a panic?): {e}")))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| TestCaseError::fail(format!("the body broke off: {e}")))?;
    prop_assert!(status < 500, "{status}: {text}");
    if status >= 400 {
        let envelope: ErrorEnvelope = serde_json::from_str(&text).map_err(|e| {
            TestCaseError::fail(format!("{status} not the JSON error ({e}): {text}"))
        })?;
        prop_assert!(!envelope.error.message.is_empty(), "{status}: {text}");
    } else {
        prop_assert!(
            serde_json::from_str::<Value>(&text).is_ok(),
            "{status} not JSON: {text}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_bodies_never_get_a_5xx_or_a_panic_only_a_4xx_json_error() {
    let server = TestServer::start(Config::default()).await;
    let handle = tokio::runtime::Handle::current();
    let server = std::sync::Arc::new(server);
    let fuzzing = server.clone();
    // proptest's runner is synchronous: it runs on a blocking thread and drives each request
    // on the runtime, so the server's workers are never blocked.
    let outcome = tokio::task::spawn_blocking(move || {
        for (index, (path, _)) in targets().into_iter().enumerate() {
            let mut runner = TestRunner::new(ProptestConfig {
                cases: CASES_PER_TARGET,
                failure_persistence: None,
                ..ProptestConfig::default()
            });
            runner
                .run(&bodies(index), |body| {
                    handle.block_on(check(&fuzzing, path, body))
                })
                .map_err(|e| format!("POST /{path}: {e}"))?;
        }
        Ok::<(), String>(())
    })
    .await
    .expect("the fuzzing thread");
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

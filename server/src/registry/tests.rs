use roomcast_protocol::UserName;

use super::*;
use crate::frames::Protocol;
use crate::outbox::Outbox;

fn registry(room_ttl: Duration, max_rooms: usize) -> (Registry, CancellationToken) {
    let shutdown = CancellationToken::new();
    let settings = RoomSettings {
        history: HistoryLimits {
            entries: 10,
            bytes: 1 << 20,
        },
        room_ttl,
        max_rooms,
        latest_on_join: Vec::new(),
        relay: RelayHooks::default(),
    };
    let registry = Registry::new(settings, Arc::new(Metrics::new()), shutdown.clone());
    (registry, shutdown)
}

fn name(text: &str) -> RoomName {
    RoomName::new(text).expect("valid room")
}

fn typed_member(user: &str, outbox: &Outbox) -> Member {
    Member {
        user: UserName::new(user).expect("valid user"),
        protocol: Protocol::Typed,
        outbox: outbox.clone(),
    }
}

#[test]
fn leaving_after_shutdown_began_tells_nobody() {
    let (registry, shutdown) = registry(Duration::from_secs(60), 10);
    let outboxes: Vec<Outbox> = (0..3).map(|_| Outbox::new(1 << 20)).collect();
    let memberships: Vec<Membership> = outboxes
        .iter()
        .enumerate()
        .map(|(i, outbox)| {
            let member = typed_member(&format!("u{i}"), outbox);
            registry.join(&name("r"), member, None, None).expect("join")
        })
        .collect();
    let queued = || {
        outboxes
            .iter()
            .map(Outbox::queued_bytes)
            .collect::<Vec<_>>()
    };
    let before = queued();

    shutdown.cancel();
    for mut membership in memberships {
        membership.set_reason(LeaveReason::Shutdown);
    }
    assert_eq!(queued(), before, "no leave event was queued");
    assert_eq!(registry.len(), 1, "the room waits out its TTL as usual");
}

#[tokio::test(start_paused = true)]
async fn an_unused_room_expires_the_ttl_after_its_last_activity() {
    let ttl = Duration::from_secs(1);
    let (registry, _shutdown) = registry(ttl, 10);
    let step = Duration::from_millis(600);
    drop(registry.lease(&name("r")).expect("created"));
    tokio::time::advance(step).await;
    assert_eq!(
        registry.expire(Instant::now()),
        Some(Instant::now() + ttl - step)
    );
    drop(registry.lease(&name("r")).expect("published to again"));
    tokio::time::advance(step).await;
    registry.expire(Instant::now());
    assert_eq!(registry.len(), 1, "the second publish restarted the TTL");
    tokio::time::advance(ttl - step).await;
    assert_eq!(registry.expire(Instant::now()), None);
    assert!(registry.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_room_in_use_never_expires_and_its_ttl_starts_when_the_last_member_leaves() {
    let ttl = Duration::from_secs(1);
    let (registry, _shutdown) = registry(ttl, 10);
    let outbox = Outbox::new(1 << 20);
    let member = registry
        .join(&name("r"), typed_member("ana", &outbox), None, None)
        .expect("join");
    let lease = registry.lease(&name("held")).expect("lease");
    tokio::time::advance(ttl * 5).await;
    assert_eq!(
        registry.expire(Instant::now()),
        None,
        "nothing waits to expire"
    );
    assert_eq!(registry.len(), 2);

    drop(member);
    drop(lease);
    tokio::time::advance(ttl - Duration::from_millis(1)).await;
    registry.expire(Instant::now());
    assert_eq!(registry.len(), 2);
    tokio::time::advance(Duration::from_millis(1)).await;
    registry.expire(Instant::now());
    assert!(registry.is_empty());
}

#[test]
fn with_a_zero_ttl_an_unused_room_goes_at_once() {
    let (registry, _shutdown) = registry(Duration::ZERO, 10);
    let lease = registry.lease(&name("r")).expect("lease");
    assert_eq!(registry.len(), 1);
    drop(lease);
    assert!(registry.is_empty());
}

#[test]
fn leasing_rooms_past_max_rooms_creates_none_of_them() {
    let (registry, _shutdown) = registry(Duration::from_secs(60), 3);
    let held = registry.lease(&name("a")).expect("lease");
    let names = [name("a"), name("b"), name("c"), name("d")];
    let refused = registry.lease_all(&names).err();
    assert_eq!(
        refused,
        Some(RoomsFull {
            max_rooms: 3,
            new_rooms: 3,
            free: 2
        })
    );
    assert_eq!(registry.len(), 1, "nothing was created");
    let fits = registry.lease_all(&names[..3]).expect("three rooms fit");
    assert_eq!((fits.len(), registry.len()), (3, 3));
    drop(held);
}

#[test]
fn many_expiring_rooms_are_removed_in_batches_and_all_of_them_go() {
    let (registry, _shutdown) = registry(Duration::from_millis(1), 10_000);
    let rooms = 3 * EXPIRY_BATCH_ROOMS + 7;
    for n in 0..rooms {
        drop(registry.lease(&name(&format!("r{n}"))).expect("lease"));
    }
    assert_eq!(registry.len(), rooms);
    let later = Instant::now() + Duration::from_secs(1);
    assert_eq!(registry.expire(later), None);
    assert!(registry.is_empty());
}

use roomcast_protocol::UserName;

use super::*;
use crate::frames::Protocol;
use std::collections::VecDeque;

fn registry(room_ttl: Duration, max_rooms: usize) -> (Registry, CancellationToken) {
    let shutdown = CancellationToken::new();
    let settings = RoomSettings {
        history: HistoryLimits {
            entries: 10,
            bytes: 1 << 20,
        },
        ring: RingLimit(1 << 20),
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

fn typed_member(user: &str) -> Member {
    Member::session(UserName::new(user).expect("valid user"), Protocol::Typed)
}

/// Messages the ring holds for `membership` now.
fn unread(membership: &Membership) -> usize {
    membership
        .room()
        .pull(membership.key(), &mut VecDeque::new(), usize::MAX)
        .expect("in place")
        .frames
}

#[test]
fn leaving_after_shutdown_began_tells_nobody() {
    let (registry, shutdown) = registry(Duration::from_secs(60), 10);
    let mut memberships: Vec<Membership> = (0..3)
        .map(|i| {
            let member = typed_member(&format!("u{i}"));
            registry
                .join(&name("r"), member, None, None, &mut Vec::new())
                .expect("join")
        })
        .collect();
    let stays = memberships.remove(0);
    assert_eq!(
        unread(&stays),
        2,
        "it was told of the two who joined after it"
    );
    let leaver = memberships.remove(0);
    drop(leaver);
    assert_eq!(unread(&stays), 1, "before shutdown, a leave is told");

    shutdown.cancel();
    for mut membership in memberships {
        membership.set_reason(LeaveReason::Shutdown);
    }
    assert_eq!(unread(&stays), 0, "no leave event was queued");
    drop(stays);
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
    let member = registry
        .join(&name("r"), typed_member("ana"), None, None, &mut Vec::new())
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

//! The room's ring, checked on the room itself: what each member reads and when it is woken
//! (a [`Dispatch::Batched`] publish wakes at the flush), who is lagged, and that a room whose
//! members read everything holds nothing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Wake, Waker};

use super::*;

fn room_with_ring(ring_bytes: usize) -> Room {
    let limits = HistoryLimits {
        entries: 100,
        bytes: 1 << 20,
    };
    let name = RoomName::new("ring").expect("valid room");
    Room::new(
        1,
        name,
        &limits,
        RingLimit(ring_bytes),
        false,
        false,
        Arc::new(Metrics::new()),
    )
}

fn room() -> Room {
    room_with_ring(1 << 20)
}

fn user(name: &str) -> UserName {
    UserName::new(name).expect("valid user")
}

/// Joins a tutorial member (its frames are the messages alone); returns its key.
fn join(room: &Room, name: &str) -> usize {
    join_since(room, name, None)
}

fn join_since(room: &Room, name: &str, since: Option<&Position>) -> usize {
    let mut direct = Vec::new();
    let key = room.join(
        Member::session(user(name), Protocol::Tutorial),
        since,
        None,
        &mut direct,
    );
    assert!(direct.is_empty(), "a tutorial member got no replay here");
    key
}

/// The `message` of each frame, oldest first (the ring's tests read frames the same way).
pub(super) fn texts_of(frames: &VecDeque<Frame>) -> Vec<String> {
    frames
        .iter()
        .flat_map(Frame::payloads)
        .map(|payload| {
            let json: serde_json::Value =
                serde_json::from_slice(payload).expect("a tutorial frame holds JSON");
            json["message"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// What member `key` reads from the ring now, oldest first.
fn read(room: &Room, key: usize) -> Vec<String> {
    let mut frames = VecDeque::new();
    room.pull(key, &mut frames, usize::MAX).expect("in place");
    texts_of(&frames)
}

fn publish(room: &Room, text: &str, dispatch: Dispatch) -> Delivery {
    room.publish(&user("ana"), text, None, Source::Socket, dispatch)
}

/// Counts its wakes.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Parks member `key` as its session would when it has read everything; returns its wakes.
fn park(room: &Room, key: usize) -> Arc<Wakes> {
    let wakes = Arc::new(Wakes::default());
    let waker = Waker::from(wakes.clone());
    let polled = room.poll_feed(key, &Context::from_waker(&waker), true);
    assert!(polled.is_pending(), "nothing to read yet");
    wakes
}

#[test]
fn members_read_every_message_once_in_order() {
    let room = room();
    let (ana, bob) = (join(&room, "ana"), join(&room, "bob"));
    for text in ["one", "two", "three"] {
        let delivery = publish(&room, text, Dispatch::Now);
        assert_eq!(delivery.delivered, 2, "both members will get it");
    }
    assert_eq!(read(&room, ana), ["one", "two", "three"]);
    publish(&room, "four", Dispatch::Now);
    assert_eq!(read(&room, ana), ["four"]);
    assert!(read(&room, ana).is_empty(), "nothing twice");
    assert_eq!(read(&room, bob), ["one", "two", "three", "four"]);
}

#[test]
fn a_batched_publish_wakes_waiting_members_at_the_flush_and_a_publish_now_at_once() {
    let room = room();
    let ana = join(&room, "ana");
    let wakes = park(&room, ana);
    publish(&room, "one", Dispatch::Batched);
    publish(&room, "two", Dispatch::Batched);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "not before the flush");
    room.flush();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "once for both messages");
    room.flush();
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        1,
        "a second flush wakes no one"
    );
    assert_eq!(read(&room, ana), ["one", "two"]);

    let wakes = park(&room, ana);
    publish(&room, "three", Dispatch::Now);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
}

#[test]
fn a_member_who_joins_after_a_batched_publish_gets_it_only_from_its_replay() {
    let room = room();
    let ana = join(&room, "ana");
    publish(&room, "before", Dispatch::Batched);
    // Recovering from seq 0: the replay holds "before" once, and the ring must not add it.
    let since = Position {
        epoch: room.stats().epoch.to_string(),
        seq: 0,
    };
    let mut direct = Vec::new();
    let bob = room.join(
        Member::session(user("bob"), Protocol::Tutorial),
        Some(&since),
        None,
        &mut direct,
    );
    assert_eq!(texts_of(&direct.into_iter().collect()), ["before"]);
    publish(&room, "after", Dispatch::Batched);
    room.flush();
    assert_eq!(read(&room, ana), ["before", "after"]);
    assert_eq!(read(&room, bob), ["after"]);
}

#[test]
fn a_member_that_falls_past_the_bound_is_lagged_and_woken_and_the_rest_read_on() {
    // Room for three of these messages (each ~130 bytes encoded), not four.
    let room = room_with_ring(450);
    let (slow, fast) = (join(&room, "slow"), join(&room, "fast"));
    let wakes = Arc::new(Wakes::default());
    let waker = Waker::from(wakes.clone());
    // The slow member's session is busy writing: it waits for lagging only.
    assert!(
        room.poll_feed(slow, &Context::from_waker(&waker), false)
            .is_pending()
    );
    let text = "m".repeat(60);
    for _ in 0..3 {
        publish(&room, &text, Dispatch::Now);
        assert_eq!(read(&room, fast).len(), 1);
    }
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "still within the bound");
    let delivery = publish(&room, &text, Dispatch::Now);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "woken to end");
    assert_eq!(delivery.delivered, 1, "the lagged member is no reader");
    assert_eq!(
        room.poll_feed(slow, &Context::from_waker(&waker), true),
        Poll::Ready(Err(Lagged))
    );
    assert_eq!(
        room.pull(slow, &mut VecDeque::new(), 10).map(|p| p.frames),
        Err(Lagged)
    );
    assert_eq!(read(&room, fast).len(), 1);
    assert!(room.state().ring.head() > 0);
    assert!(
        room.state().ring.is_empty(),
        "nothing waits for the lagged one"
    );
}

#[test]
fn what_every_member_read_is_gone_and_a_leaver_holds_nothing_back() {
    let room = room();
    let (ana, bob) = (join(&room, "ana"), join(&room, "bob"));
    publish(&room, "one", Dispatch::Now);
    read(&room, ana);
    assert!(!room.state().ring.is_empty(), "bob has not read it");
    room.leave(bob, LeaveReason::Left, true);
    assert!(room.state().ring.is_empty());
}

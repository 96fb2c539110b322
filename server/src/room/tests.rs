//! The batched fan-out's ordering rules, checked on the room itself: when a member gets a
//! message published [`Dispatch::Batched`], and that it gets it exactly once.

use std::collections::VecDeque;

use super::*;

fn room() -> Room {
    let limits = HistoryLimits {
        entries: 100,
        bytes: 1 << 20,
    };
    let name = RoomName::new("batch").expect("valid room");
    Room::new(1, name, &limits, false, false, Arc::new(Metrics::new()))
}

fn user(name: &str) -> UserName {
    UserName::new(name).expect("valid user")
}

/// A tutorial member (its frames are the messages alone) and its outbox.
fn member(name: &str) -> (Member, Outbox) {
    let outbox = Outbox::new(1 << 20);
    let member = Member {
        user: user(name),
        protocol: Protocol::Tutorial,
        outbox: outbox.clone(),
    };
    (member, outbox)
}

/// The texts queued in `outbox`, oldest first.
fn texts(outbox: &Outbox) -> Vec<String> {
    let mut taken = VecDeque::new();
    outbox.take_all(&mut taken);
    taken
        .iter()
        .map(|frame| {
            let bytes = frame.bytes();
            // Tutorial frames are short text frames: a two-byte header, then the JSON.
            let json: serde_json::Value =
                serde_json::from_slice(&bytes[2..]).expect("a tutorial frame holds JSON");
            json["message"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

fn publish(room: &Room, text: &str, dispatch: Dispatch) -> Delivery {
    room.publish(&user("ana"), text, None, Source::Socket, dispatch)
}

#[test]
fn batched_publishes_reach_members_at_the_flush_in_order() {
    let room = room();
    let (ana, ana_box) = member("ana");
    let (bob, bob_box) = member("bob");
    room.join(ana, None, None);
    room.join(bob, None, None);
    for text in ["one", "two", "three"] {
        let delivery = publish(&room, text, Dispatch::Batched);
        assert_eq!(delivery.delivered, 2, "both members will get it");
    }
    assert!(
        texts(&bob_box).is_empty(),
        "nothing is queued before the flush"
    );
    room.flush();
    assert_eq!(texts(&ana_box), ["one", "two", "three"]);
    assert_eq!(texts(&bob_box), ["one", "two", "three"]);
    room.flush();
    assert!(
        texts(&bob_box).is_empty(),
        "a second flush queues nothing again"
    );
}

#[test]
fn a_member_who_joins_before_the_flush_gets_none_of_the_earlier_messages_live() {
    let room = room();
    let (ana, ana_box) = member("ana");
    room.join(ana, None, None);
    publish(&room, "before", Dispatch::Batched);
    let (bob, bob_box) = member("bob");
    // Recovering from seq 0: the replay holds "before" once, and the flush must not add it.
    let since = Position {
        epoch: room.stats().epoch.to_string(),
        seq: 0,
    };
    room.join(bob, Some(&since), None);
    publish(&room, "after", Dispatch::Batched);
    room.flush();
    assert_eq!(texts(&ana_box), ["before", "after"]);
    assert_eq!(texts(&bob_box), ["before", "after"]);
}

#[test]
fn a_leaver_gets_what_was_published_while_it_was_present() {
    let room = room();
    let (ana, _ana_box) = member("ana");
    let (bob, bob_box) = member("bob");
    room.join(ana, None, None);
    let bob_key = room.join(bob, None, None);
    publish(&room, "last words", Dispatch::Batched);
    room.leave(bob_key, LeaveReason::Left, true);
    assert_eq!(texts(&bob_box), ["last words"]);
}

#[test]
fn a_publish_now_queues_the_batched_ones_first() {
    let room = room();
    let (ana, ana_box) = member("ana");
    room.join(ana, None, None);
    publish(&room, "batched", Dispatch::Batched);
    let delivery = publish(&room, "now", Dispatch::Now);
    assert_eq!(delivery.delivered, 1);
    assert_eq!(texts(&ana_box), ["batched", "now"]);
}

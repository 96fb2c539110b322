//! The ring alone: slots, cursors, lagging, presence and runs.

use super::*;
use crate::room::tests::texts_of as texts;

fn named(name: &str) -> UserName {
    UserName::new(name).expect("valid user")
}

/// A message's tutorial and typed frames.
fn message(text: &str) -> Frames {
    let json = format!(r#"{{"message":"{text}"}}"#);
    [Some(Frame::text(&json)), Some(Frame::text(&json))]
}

#[test]
fn a_slot_goes_when_its_last_reader_passed_it() {
    let user = named("ana");
    let mut ring = Ring::new(1 << 20);
    let (mut a, mut b) = (ring.cursor(), ring.cursor());
    ring.append(message("one"), None, 2);
    ring.append(message("two"), None, 2);
    let mut frames = VecDeque::new();
    let pulled = ring
        .pull(&mut a, (Protocol::Typed, &user), &mut frames, 1)
        .expect("in place");
    assert_eq!((pulled.frames, texts(&frames)), (1, vec!["one".to_owned()]));
    assert_eq!(ring.slots.len(), 2, "b has read nothing yet");
    ring.pull(&mut b, (Protocol::Typed, &user), &mut frames, 10)
        .expect("in place");
    assert_eq!(ring.slots.len(), 1, "both passed the first slot");
    ring.forget(&a);
    assert!(
        ring.slots.is_empty(),
        "the leaver no longer holds the second"
    );
    assert_eq!(ring.bytes, 0);
}

#[test]
fn a_reader_past_the_bound_loses_its_place() {
    let user = named("ana");
    // Each slot is 17 bytes: two fit, three do not.
    let mut ring = Ring::new(40);
    let (mut slow, mut fast) = (ring.cursor(), ring.cursor());
    for _ in 0..2 {
        assert_eq!(ring.append(message("m"), None, 2), None);
        ring.pull(
            &mut fast,
            (Protocol::Typed, &user),
            &mut VecDeque::new(),
            10,
        )
        .expect("in place");
    }
    let first = ring.append(message("m"), None, 2).expect("over the bound");
    assert!(Ring::lost(&slow, first) && !Ring::lost(&fast, first));
    ring.lag(&mut slow);
    let mut frames = VecDeque::new();
    assert_eq!(
        ring.pull(&mut slow, (Protocol::Typed, &user), &mut frames, 10)
            .map(|p| p.frames),
        Err(Lagged)
    );
    ring.pull(&mut fast, (Protocol::Typed, &user), &mut frames, 10)
        .expect("in place");
    assert!(
        ring.slots.is_empty(),
        "the lagged reader holds nothing back"
    );
}

/// Each entry of `frames` as the texts of the messages it carries.
fn entries(frames: &VecDeque<Frame>) -> Vec<Vec<String>> {
    frames
        .iter()
        .map(|frame| texts(&VecDeque::from([frame.clone()])))
        .collect()
}

#[test]
fn members_who_pull_the_same_slots_share_one_run() {
    let user = named("ana");
    let mut ring = Ring::new(1 << 20);
    let mut cursors = [ring.cursor(), ring.cursor(), ring.cursor()];
    for text in ["one", "two", "three"] {
        ring.append(message(text), None, 3);
    }
    let pulls: Vec<VecDeque<Frame>> = cursors
        .iter_mut()
        .map(|cursor| {
            let mut frames = VecDeque::new();
            let pulled = ring
                .pull(cursor, (Protocol::Typed, &user), &mut frames, 10)
                .expect("in place");
            assert_eq!(pulled.frames, 3);
            frames
        })
        .collect();
    for frames in &pulls {
        assert_eq!(frames.len(), 1, "one run, not three frames");
        assert_eq!(texts(frames), ["one", "two", "three"]);
        assert_eq!(
            frames[0].as_bytes().as_ptr(),
            pulls[0][0].as_bytes().as_ptr(),
            "the same buffer, made once"
        );
    }
    assert!(ring.is_empty(), "every reader passed every slot");
    assert_eq!(ring.run_bytes, 0, "the run went with its slot");
}

#[test]
fn a_run_stops_at_a_presence_event_and_at_the_pull_limit() {
    let (ana, bob) = (named("ana"), named("bob"));
    let mut ring = Ring::new(1 << 20);
    let (mut a, mut b, mut c) = (ring.cursor(), ring.cursor(), ring.cursor());
    ring.append(message("m1"), None, 3);
    ring.append(message("m2"), None, 3);
    let event = Frame::text(r#"{"message":"ana left"}"#);
    ring.append([None, Some(event)], Some(ana.clone()), 3);
    ring.append(message("m3"), None, 3);
    ring.append(message("m4"), None, 3);
    let mut pull = |cursor: &mut Cursor, user: &UserName, max: usize| {
        let mut frames = VecDeque::new();
        ring.pull(cursor, (Protocol::Typed, user), &mut frames, max)
            .expect("in place");
        entries(&frames)
    };
    assert_eq!(
        pull(&mut b, &bob, 10),
        [vec!["m1", "m2"], vec!["ana left"], vec!["m3", "m4"]]
    );
    assert_eq!(
        pull(&mut a, &ana, 10),
        [vec!["m1", "m2"], vec!["m3", "m4"]],
        "the excepted user skips the event and shares the runs"
    );
    // A run that ends past what is asked is not taken.
    assert_eq!(pull(&mut c, &bob, 1), [vec!["m1"]]);
    assert_eq!(
        pull(&mut c, &bob, 10),
        [vec!["m2"], vec!["ana left"], vec!["m3", "m4"]]
    );
}

#[test]
fn runs_hold_no_more_than_the_ring_bound() {
    let user = named("ana");
    // Each slot is 17 bytes: three fit, and one run of them.
    let mut ring = Ring::new(60);
    let (mut x, mut y, mut z) = (ring.cursor(), ring.cursor(), ring.cursor());
    for _ in 0..3 {
        ring.append(message("m"), None, 3);
    }
    let pull = |ring: &mut Ring, cursor: &mut Cursor, max: usize| {
        let mut frames = VecDeque::new();
        ring.pull(cursor, (Protocol::Typed, &user), &mut frames, max)
            .expect("in place");
        frames.len()
    };
    assert_eq!(pull(&mut ring, &mut x, 10), 1, "one run");
    assert_eq!(ring.run_bytes, 51);
    // y pulls from the second slot, so it would need a run of its own: it does not fit
    // beside the first one, which z (not read yet) keeps.
    assert_eq!(pull(&mut ring, &mut y, 1), 1);
    assert_eq!(pull(&mut ring, &mut y, 10), 2, "frame by frame");
    assert_eq!(ring.run_bytes, 51, "within the bound");
    assert_eq!(pull(&mut ring, &mut z, 10), 1, "x's run");
    assert!(ring.is_empty());
    assert_eq!(ring.run_bytes, 0, "the run went with its slot");
}

#[test]
fn presence_skips_tutorial_members_and_the_excepted_user() {
    let (ana, bob) = (named("ana"), named("bob"));
    let mut ring = Ring::new(1 << 20);
    let mut cursors = [ring.cursor(), ring.cursor(), ring.cursor()];
    let frame = Frame::text(r#"{"type":"join"}"#);
    ring.append([None, Some(frame)], Some(ana.clone()), 3);
    let members = [
        (Protocol::Typed, &ana),
        (Protocol::Typed, &bob),
        (Protocol::Tutorial, &bob),
    ];
    let got: Vec<usize> = cursors
        .iter_mut()
        .zip(members)
        .map(|(cursor, member)| {
            let mut frames = VecDeque::new();
            ring.pull(cursor, member, &mut frames, 10)
                .expect("in place")
                .frames
        })
        .collect();
    assert_eq!(got, [0, 1, 0]);
    assert!(ring.slots.is_empty(), "every reader passed it");
}

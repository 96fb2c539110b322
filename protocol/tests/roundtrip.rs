//! Property tests: every frame a client can build survives encode/decode unchanged, and no
//! byte sequence makes a decoder panic.

use proptest::prelude::*;
use roomcast_protocol::{
    ClientFrame, ErrorCode, LeaveReason, Position, Ref, RoomMessage, RoomName, ServerFrame,
    TutorialFrame, TutorialSend, UserName,
};

fn room() -> impl Strategy<Value = RoomName> {
    "[A-Za-z0-9_.-]{1,100}"
        .prop_filter("not only dots", |s| !s.bytes().all(|b| b == b'.'))
        .prop_map(|s| RoomName::new(&s).expect("generated names follow the rule"))
}

fn user() -> impl Strategy<Value = UserName> {
    "[\\p{L}\\p{N}_.'-]{1,32}"
        .prop_map(|s| UserName::new(&s).expect("generated names follow the rule"))
}

fn reference() -> impl Strategy<Value = Option<Ref>> {
    prop_oneof![
        Just(None),
        any::<u64>().prop_map(|n| Some(Ref::Number(n))),
        "[ -~]{0,64}".prop_map(|s| Some(Ref::Text(s))),
    ]
}

fn position() -> impl Strategy<Value = Option<Position>> {
    proptest::option::of(
        ("[a-f0-9]{1,16}", any::<u64>()).prop_map(|(epoch, seq)| Position { epoch, seq }),
    )
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (
            room(),
            position(),
            proptest::option::of("[A-Za-z0-9_.-]{1,40}"),
            reference()
        )
            .prop_map(|(room, since, token, reference)| ClientFrame::Join {
                room,
                since,
                token,
                reference
            }),
        (room(), reference()).prop_map(|(room, reference)| ClientFrame::Leave { room, reference }),
        (room(), any::<String>(), data(), reference()).prop_map(
            |(room, message, data, reference)| ClientFrame::Publish {
                room,
                message,
                data,
                reference,
            }
        ),
        reference().prop_map(|reference| ClientFrame::Ping { reference }),
    ]
}

/// Optional `data`: objects of strings, integers, booleans and nested arrays (floats are left
/// out: their decimal text need not read back to the same bits).
fn data() -> impl Strategy<Value = Option<serde_json::Map<String, serde_json::Value>>> {
    let leaf = prop_oneof![
        any::<String>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ];
    let value = leaf.prop_recursive(2, 8, 4, |inner| {
        proptest::collection::vec(inner, 0..4).prop_map(serde_json::Value::Array)
    });
    proptest::option::of(
        proptest::collection::btree_map(any::<String>(), value, 0..4)
            .prop_map(|map| map.into_iter().collect()),
    )
}

fn room_message() -> impl Strategy<Value = RoomMessage> {
    (
        room(),
        user(),
        any::<u64>(),
        any::<u64>(),
        any::<String>(),
        data(),
    )
        .prop_map(|(room, user, seq, ts, message, data)| RoomMessage {
            room,
            user,
            seq,
            ts,
            message,
            data,
        })
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let reason = prop_oneof![
        Just(LeaveReason::Left),
        Just(LeaveReason::Timeout),
        Just(LeaveReason::Slow),
        Just(LeaveReason::Closed),
        Just(LeaveReason::Shutdown),
    ];
    prop_oneof![
        room_message().prop_map(ServerFrame::Message),
        (room(), user()).prop_map(|(room, user)| ServerFrame::Join { room, user }),
        (room(), user(), reason).prop_map(|(room, user, reason)| ServerFrame::Leave {
            room,
            user,
            reason
        }),
        (
            room(),
            "[a-f0-9]{16}",
            any::<u64>(),
            proptest::collection::vec(user(), 0..5),
            proptest::option::of(any::<bool>()),
            0usize..100,
            reference()
        )
            .prop_map(
                |(room, epoch, seq, members, recovered, replay, reference)| ServerFrame::Joined {
                    room,
                    epoch,
                    seq,
                    members,
                    recovered,
                    replay,
                    reference,
                }
            ),
        (any::<u64>(), reference()).prop_map(|(ts, reference)| ServerFrame::Pong { ts, reference }),
        (proptest::option::of(room()), any::<String>(), reference()).prop_map(
            |(room, message, reference)| {
                ServerFrame::Error {
                    code: ErrorCode::NotJoined,
                    message,
                    room,
                    reference,
                }
            }
        ),
    ]
}

proptest! {
    #[test]
    fn client_frames_round_trip(frame in client_frame()) {
        let text = serde_json::to_string(&frame).expect("frames encode");
        let back: ClientFrame = serde_json::from_str(&text).expect("encoded frames decode");
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        let text = serde_json::to_string(&frame).expect("frames encode");
        let back: ServerFrame = serde_json::from_str(&text).expect("encoded frames decode");
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn tutorial_frames_round_trip(message in room_message(), text in any::<String>()) {
        let frame = TutorialFrame::Message(message);
        let encoded = serde_json::to_string(&frame).expect("encodes");
        prop_assert_eq!(serde_json::from_str::<TutorialFrame>(&encoded).expect("decodes"), frame);
        let send = TutorialSend { message: text };
        let encoded = serde_json::to_string(&send).expect("encodes");
        prop_assert_eq!(serde_json::from_str::<TutorialSend>(&encoded).expect("decodes"), send);
    }

    #[test]
    fn random_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<ClientFrame>(&bytes);
        let _ = serde_json::from_slice::<ServerFrame>(&bytes);
        let _ = serde_json::from_slice::<TutorialFrame>(&bytes);
        let _ = serde_json::from_slice::<TutorialSend>(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = RoomName::new(&text);
        let _ = UserName::new(&text);
        let _ = text.parse::<roomcast_protocol::ServerUrl>();
    }

    #[test]
    fn json_shaped_noise_never_panics_a_decoder(
        kind in prop_oneof![
            Just("join".to_owned()),
            Just("publish".to_owned()),
            Just("ping".to_owned()),
            "[a-z]{0,8}",
        ],
        room in "\\PC{0,120}",
        extra in "\\PC{0,40}",
    ) {
        let text = format!(r#"{{"type":"{kind}","room":{room:?},"message":{extra:?},"ref":{extra:?}}}"#);
        let _ = serde_json::from_str::<ClientFrame>(&text);
    }
}

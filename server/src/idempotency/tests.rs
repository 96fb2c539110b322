use std::convert::Infallible;
use std::sync::Arc;

use roomcast_protocol::RoomName;

use super::*;

type RoomKeys = IdempotencyCache<(RoomName, String), PublishReceipt>;

fn key(room: &str, key: &str) -> (RoomName, String) {
    (RoomName::new(room).expect("valid room"), key.to_owned())
}

fn receipt(seq: u64) -> PublishReceipt {
    PublishReceipt {
        room: RoomName::new("r").expect("valid room"),
        seq,
        epoch: "e".into(),
        delivered: 1,
    }
}

fn claim<'a>(
    cache: &'a RoomKeys,
    k: &(RoomName, String),
    now: Instant,
) -> Claim<'a, (RoomName, String), PublishReceipt> {
    match cache.lookup(k, now) {
        Lookup::Claimed(claim) => claim,
        other => panic!("expected to claim {k:?}, got {other:?}"),
    }
}

fn known(cache: &RoomKeys, k: &(RoomName, String), now: Instant) -> Option<u64> {
    match cache.lookup(k, now) {
        Lookup::Known(answer) => Some(answer.seq),
        _ => None,
    }
}

#[test]
fn a_repeated_key_answers_the_first_result_until_it_expires() {
    let cache = RoomKeys::default();
    let k = key("r", "k");
    let start = Instant::now();
    claim(&cache, &k, start).settle(&receipt(1), start);
    assert_eq!(known(&cache, &k, start), Some(1));
    let later = start + IDEMPOTENCY_WINDOW;
    claim(&cache, &k, later).settle(&receipt(3), later);
    assert_eq!(known(&cache, &k, later), Some(3));
}

#[test]
fn keys_are_per_room_and_failures_are_not_remembered() {
    let cache = RoomKeys::default();
    let now = Instant::now();
    drop(claim(&cache, &key("a", "k"), now));
    claim(&cache, &key("a", "k"), now).settle(&receipt(1), now);
    claim(&cache, &key("b", "k"), now).settle(&receipt(2), now);
    assert_eq!(known(&cache, &key("a", "k"), now), Some(1));
    assert_eq!(known(&cache, &key("b", "k"), now), Some(2));
}

#[test]
fn a_publish_in_flight_locks_out_neither_other_keys_nor_lookups() {
    let cache = RoomKeys::default();
    let now = Instant::now();
    // The claim is held as a publish would hold it while it fans out.
    let first = claim(&cache, &key("a", "k1"), now);
    let other = claim(&cache, &key("b", "k2"), now);
    other.settle(&receipt(7), now);
    assert_eq!(known(&cache, &key("b", "k2"), now), Some(7));
    assert!(matches!(
        cache.lookup(&key("a", "k1"), now),
        Lookup::InFlight(_)
    ));
    first.settle(&receipt(1), now);
    assert_eq!(known(&cache, &key("a", "k1"), now), Some(1));
}

#[tokio::test]
async fn a_concurrent_retry_waits_for_the_answer_in_flight_and_does_not_publish() {
    let cache = Arc::new(RoomKeys::default());
    let k = key("a", "k");
    let first = claim(&cache, &k, Instant::now());
    let retry = tokio::spawn({
        let (cache, k) = (cache.clone(), k.clone());
        async move {
            cache
                .get_or_publish(&k, || -> std::future::Ready<Result<_, Infallible>> {
                    panic!("the retry published although the first publish was in flight")
                })
                .await
                .map(|answer| answer.seq)
        }
    });
    // Give the retry every chance to run before the first publish settles.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    first.settle(&receipt(1), Instant::now());
    let answered = retry.await.expect("the retry task");
    assert!(matches!(answered, Ok(1)), "{answered:?}");
}

#[tokio::test]
async fn a_retry_publishes_itself_when_the_publish_in_flight_fails() {
    let cache = RoomKeys::default();
    let k = key("a", "k");
    let first = claim(&cache, &k, Instant::now());
    let retry = cache.get_or_publish(&k, || async { Ok::<_, Infallible>(receipt(2)) });
    let failed = async { drop(first) };
    let (answered, ()) = tokio::join!(retry, failed);
    assert!(matches!(answered, Ok(ref r) if r.seq == 2), "{answered:?}");
}

#[test]
fn the_receipt_bound_forgets_the_oldest_keys_first() {
    let cache = RoomKeys::bounded(3);
    let now = Instant::now();
    for n in 0..=3 {
        let k = key("r", &n.to_string());
        claim(&cache, &k, now).settle(&receipt(n as u64), now);
    }
    assert_eq!(known(&cache, &key("r", "0"), now), None);
    assert_eq!(known(&cache, &key("r", "1"), now), Some(1));
}

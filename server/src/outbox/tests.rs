use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Wake;

use super::*;

fn frame(len: usize) -> Frame {
    Frame::text(&"x".repeat(len))
}

/// A waker that counts its wakes, so a test sees exactly when a waiting session is woken
/// (a runtime would hide a missing wake behind the order it happens to poll tasks in).
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    fn wakes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn counting() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    (counter, waker)
}

#[test]
fn pushes_past_the_bound_overflow_once_then_refuse() {
    let message = frame(400);
    let outbox = Outbox::new(2 * charge_of(&message) - 1);
    assert_eq!(outbox.push(message.clone()), Push::Queued);
    assert_eq!(outbox.push(message.clone()), Push::Overflowed);
    assert_eq!(outbox.push(frame(1)), Push::Refused);
    assert_eq!(outbox.queued_bytes(), charge_of(&message));
}

#[test]
fn bytes_taken_count_until_released() {
    let outbox = Outbox::new(1000);
    let big = frame(600);
    assert_eq!(outbox.push(big.clone()), Push::Queued);
    let mut taken = VecDeque::new();
    outbox.take_all(&mut taken);
    assert_eq!(taken.len(), 1);
    // The frame is still being written: a second one of the same size does not fit.
    assert_eq!(outbox.push(frame(600)), Push::Overflowed);
    outbox.release(charge_of(&big));
    assert_eq!(outbox.queued_bytes(), 0);
}

#[test]
fn take_all_keeps_the_order_and_hands_back_the_emptied_queue() {
    let outbox = Outbox::new(usize::MAX);
    let mut taken = VecDeque::new();
    outbox.push(frame(1));
    outbox.take_all(&mut taken);
    outbox.push(frame(2));
    outbox.push(frame(3));
    outbox.take_all(&mut taken);
    let lengths: Vec<usize> = taken.iter().map(Frame::len).collect();
    assert_eq!(lengths, [3, 4, 5]);
    assert!(
        outbox.state().frames.capacity() > 0,
        "the emptied queue is kept for reuse"
    );
}

#[test]
fn ready_wakes_a_waiting_session_on_the_first_frame_and_only_then() {
    let outbox = Outbox::new(10_000);
    let (counter, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    let mut ready = pin!(outbox.ready());
    assert!(ready.as_mut().poll(&mut cx).is_pending());
    assert_eq!(counter.wakes(), 0);

    outbox.push(frame(10));
    assert_eq!(counter.wakes(), 1, "the push woke the waiting session");
    outbox.push(frame(10));
    assert_eq!(counter.wakes(), 1, "no second wake before it looked");
    assert_eq!(ready.as_mut().poll(&mut cx), Poll::Ready(Ready::Frames));
}

#[test]
fn an_overflow_wakes_a_waiting_stream_and_refuses_what_follows() {
    let outbox = Outbox::new(100);
    let (counter, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    let mut ready = pin!(outbox.ready());
    assert!(ready.as_mut().poll(&mut cx).is_pending());
    assert_eq!(outbox.push(frame(200)), Push::Overflowed);
    assert_eq!(counter.wakes(), 1, "the overflow woke it");
    assert_eq!(ready.as_mut().poll(&mut cx), Poll::Ready(Ready::Overflowed));
    assert_eq!(outbox.push(frame(10)), Push::Refused);
}

#[test]
fn a_fan_out_wakes_its_sessions_when_dropped() {
    let outbox = Outbox::new(10_000);
    let (counter, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    let mut ready = pin!(outbox.ready());
    assert!(ready.as_mut().poll(&mut cx).is_pending());
    let mut fan_out = FanOut::default();
    fan_out.push(&outbox, frame(10));
    assert_eq!(counter.wakes(), 0, "not while the room's lock may be held");
    drop(fan_out);
    assert_eq!(counter.wakes(), 1);
}

#[test]
fn the_overflow_signal_wakes_its_waiter_when_a_push_passes_the_bound_or_a_stall_overflows() {
    let message = frame(400);
    for stalled in [false, true] {
        let outbox = Outbox::new(2 * charge_of(&message) - 1);
        let (wakes, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut signal = pin!(outbox.overflow_signal());
        // A queued frame is not an overflow; nor does waiting take the stream's waker slot.
        assert_eq!(outbox.push(message.clone()), Push::Queued);
        assert!(signal.as_mut().poll(&mut cx).is_pending());
        if stalled {
            outbox.overflow();
        } else {
            assert_eq!(outbox.push(message.clone()), Push::Overflowed);
        }
        assert_eq!(wakes.wakes(), 1, "stalled: {stalled}");
        assert!(signal.as_mut().poll(&mut cx).is_ready());
        // A signal asked for afterwards is ready at once.
        assert!(pin!(outbox.overflow_signal()).poll(&mut cx).is_ready());
    }
}

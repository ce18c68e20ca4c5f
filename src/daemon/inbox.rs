//! A shop task's inbox: what reaches the task from outside while it waits between passes, a
//! request for a pass now and webhook callbacks, in one small allocation per shop.
//!
//! Invariants: a request or callback delivered while the task is in a pass is seen when it next
//! waits (the `Notify` keeps one permit); callbacks are taken in the order they came, and at most
//! [`CAPACITY`] wait (more are refused: the next pass reads what they carried); an empty inbox
//! holds no room for callbacks. Why not a tokio channel: a bounded channel allocates room for 32
//! items up front, about 0.8 KiB in every shop's task (8 MB at 10 000 shops), for callbacks that
//! most shops never get (webhooks are off, or a shop is quiet).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::webhooks::Callback;

/// Callbacks a shop task may have waiting; more (a burst during a long pass) are refused, and
/// the next pass reads what they carried.
pub(super) const CAPACITY: usize = 256;

#[derive(Debug, Default)]
pub(super) struct Inbox {
    wake: Notify,
    pass_now: AtomicBool,
    callbacks: Mutex<VecDeque<Box<Callback>>>,
}

impl Inbox {
    /// Asks the task for a pass as soon as it is not in one.
    pub fn request_pass(&self) {
        self.pass_now.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Queues `callback` for the task; false (and dropped) when [`CAPACITY`] are waiting.
    pub fn deliver(&self, callback: Callback) -> bool {
        {
            let mut waiting = self.callbacks.lock().expect("inbox lock");
            if waiting.len() >= CAPACITY {
                return false;
            }
            waiting.push_back(Box::new(callback));
        }
        self.wake.notify_one();
        true
    }

    /// The oldest waiting callback; the room a burst took is given back once none wait.
    pub fn next_callback(&self) -> Option<Box<Callback>> {
        let mut waiting = self.callbacks.lock().expect("inbox lock");
        let next = waiting.pop_front();
        if waiting.is_empty() && waiting.capacity() > 0 {
            waiting.shrink_to_fit();
        }
        next
    }

    /// Whether a pass was asked for since the last call (a pass that starts answers every
    /// request made before it).
    pub fn take_pass_request(&self) -> bool {
        self.pass_now.swap(false, Ordering::AcqRel)
    }

    /// Returns once something was delivered since the last wait (at once if it already was).
    pub async fn delivered(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::News;

    fn callback(n: usize) -> Callback {
        Callback {
            shop: "acme".into(),
            news: News::Unusable(n.to_string()),
        }
    }

    fn unusable(c: &Callback) -> &str {
        match &c.news {
            News::Unusable(what) => what,
            News::Changed(..) => panic!("{c:?}"),
        }
    }

    #[tokio::test]
    async fn callbacks_come_in_order_up_to_the_capacity_and_leave_no_room_behind() {
        let inbox = Inbox::default();
        for n in 0..CAPACITY {
            assert!(inbox.deliver(callback(n)));
        }
        assert!(!inbox.deliver(callback(CAPACITY)), "a full inbox refuses");
        // Delivered while the task was busy: its next wait returns at once.
        inbox.delivered().await;
        for n in 0..CAPACITY {
            assert_eq!(unusable(&inbox.next_callback().unwrap()), n.to_string());
        }
        assert!(inbox.next_callback().is_none());
        assert_eq!(inbox.callbacks.lock().unwrap().capacity(), 0);
        assert!(!inbox.take_pass_request(), "callbacks ask for no pass");
    }

    #[tokio::test]
    async fn a_pass_request_is_seen_once_and_wakes_a_waiting_task() {
        let inbox = std::sync::Arc::new(Inbox::default());
        let waiting = tokio::spawn({
            let inbox = inbox.clone();
            async move { inbox.delivered().await }
        });
        inbox.request_pass();
        waiting.await.unwrap();
        assert!(inbox.take_pass_request());
        assert!(!inbox.take_pass_request());
    }
}

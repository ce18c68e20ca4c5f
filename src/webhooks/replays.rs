//! The receiver's second line against replays: the idempotency keys of the callbacks it handed
//! on lately. (The first line is the record's `version`, which makes a replay harmless however
//! late it comes; this one saves the shop task the work for the common case, a retry seconds
//! after a delivery whose answer Tripletex did not see.)
//!
//! Invariants: bounded: at most [`KEEP`] keys, the oldest forgotten first; a key is remembered
//! only once its callback was handed on, so a delivery refused (e.g. 503 while the queue is full)
//! is taken when Tripletex retries it.

use std::collections::{HashSet, VecDeque};

/// Keys kept: hours of callbacks for most deployments, a few hundred KiB at most.
pub const KEEP: usize = 4096;

/// Recently handed-on idempotency keys.
#[derive(Debug, Default)]
pub struct RecentKeys {
    order: VecDeque<String>,
    known: HashSet<String>,
}

impl RecentKeys {
    pub fn contains(&self, key: &str) -> bool {
        self.known.contains(key)
    }

    /// Remembers `key`, forgetting the oldest beyond [`KEEP`].
    pub fn remember(&mut self, key: &str) {
        if !self.known.insert(key.to_owned()) {
            return;
        }
        self.order.push_back(key.to_owned());
        if self.order.len() > KEEP
            && let Some(oldest) = self.order.pop_front()
        {
            self.known.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_bounded_window_oldest_out_first() {
        let mut keys = RecentKeys::default();
        keys.remember("a");
        keys.remember("a");
        assert!(keys.contains("a"));
        for i in 0..KEEP {
            keys.remember(&i.to_string());
        }
        assert!(!keys.contains("a"), "the oldest went first");
        assert!(keys.contains("0") && keys.contains(&(KEEP - 1).to_string()));
        assert_eq!(keys.order.len(), KEEP);
        assert_eq!(keys.known.len(), KEEP);
    }
}

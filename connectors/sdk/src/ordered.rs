//! Release of checkpoints in source order when outcomes arrive in any order.
//!
//! A Kafka offset or a stream sequence number may be checkpointed only when
//! every record before it has a final outcome: committing past an unfinished
//! record would lose it after a crash. [`ContiguousTracker`] holds the
//! positions a connector yielded, in source order, and tells how far the
//! finished prefix reaches.

use std::collections::VecDeque;

/// Positions yielded in increasing order; each finished once, in any order.
#[derive(Debug, Default)]
pub struct ContiguousTracker {
    pending: VecDeque<(u64, bool)>,
}

impl ContiguousTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `position` was yielded. Positions must increase.
    pub fn track(&mut self, position: u64) {
        debug_assert!(self.pending.back().is_none_or(|(last, _)| *last < position));
        self.pending.push_back((position, false));
    }

    /// Marks `position` final and returns the highest position whose
    /// predecessors are all final too, if that moved forward.
    pub fn finish(&mut self, position: u64) -> Option<u64> {
        if let Ok(i) = self.pending.binary_search_by_key(&position, |(p, _)| *p) {
            self.pending[i].1 = true;
        }
        let mut released = None;
        while let Some(&(p, true)) = self.pending.front() {
            released = Some(p);
            self.pending.pop_front();
        }
        released
    }

    /// Positions yielded and not yet released.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Forgets every pending position (a partition revoked, a stream reset).
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_only_the_finished_prefix() {
        let mut tracker = ContiguousTracker::new();
        for p in [10, 11, 12, 13] {
            tracker.track(p);
        }

        assert_eq!(tracker.finish(12), None);
        assert_eq!(tracker.finish(10), Some(10));
        assert_eq!(tracker.finish(11), Some(12));
        assert_eq!(tracker.len(), 1);
        assert_eq!(tracker.finish(13), Some(13));
        assert!(tracker.is_empty());
    }

    #[test]
    fn unknown_positions_release_nothing() {
        let mut tracker = ContiguousTracker::new();
        tracker.track(1);
        assert_eq!(tracker.finish(7), None);
        assert_eq!(tracker.len(), 1);
    }
}

//! How long to wait before the next attempt. Whether to retry at all is the
//! delivery loop's decision; this module only owns the delays.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with full jitter: before retry `n` (from 0), a delay
/// drawn uniformly from `[0, min(max, initial × 2ⁿ)]`.
///
/// Full jitter spreads retries of many batches that failed together, so a
/// function recovering from an outage is not hit by them all at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The upper bound of the delay before retry `retry`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// A delay before retry `retry`.
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        if ceiling.is_zero() {
            return ceiling;
        }
        Duration::from_nanos(rng.random_range(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64))
    }

    /// The wait before the next attempt: the function's `Retry-After` when it
    /// gave one, else a jittered delay.
    pub fn wait(&self, retry: u32, retry_after: Option<Duration>, rng: &mut impl Rng) -> Duration {
        retry_after.unwrap_or_else(|| self.delay(retry, rng))
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    const BACKOFF: Backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(5),
    };

    #[test]
    fn ceiling_doubles_up_to_the_maximum() {
        assert_eq!(BACKOFF.ceiling(0), Duration::from_millis(100));
        assert_eq!(BACKOFF.ceiling(1), Duration::from_millis(200));
        assert_eq!(BACKOFF.ceiling(5), Duration::from_millis(3200));
        assert_eq!(BACKOFF.ceiling(6), Duration::from_secs(5));
        assert_eq!(BACKOFF.ceiling(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn delays_stay_within_the_ceiling_and_spread_over_it() {
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 0..10 {
            let ceiling = BACKOFF.ceiling(retry);
            let delays: Vec<_> = (0..200).map(|_| BACKOFF.delay(retry, &mut rng)).collect();
            assert!(delays.iter().all(|d| *d <= ceiling));
            // Full jitter: draws land in both the low and the high quarter.
            assert!(delays.iter().any(|d| *d < ceiling / 4));
            assert!(delays.iter().any(|d| *d > ceiling * 3 / 4));
        }
    }

    #[test]
    fn retry_after_takes_precedence_even_above_the_maximum() {
        let mut rng = StdRng::seed_from_u64(1);
        let wait = BACKOFF.wait(0, Some(Duration::from_secs(30)), &mut rng);
        assert_eq!(wait, Duration::from_secs(30));
    }
}

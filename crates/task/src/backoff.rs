//! Capped exponential backoff with equal jitter.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Capped exponential backoff with "equal jitter".
///
/// The `n`-th call to [`Backoff::next_delay`] since the last reset (counting from 0)
/// returns a delay uniformly drawn from `[d/2, d]` where `d = min(cap, base * 2^n)`.
/// The delay is never above `cap` and the computation never overflows, whatever `n`,
/// `base` and `cap` are. A `base` above `cap` is treated as `cap`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff whose first delay is within `[base/2, base]` and that never exceeds `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap, failures: 0 }
    }

    /// Records one more failure and returns how long to wait before retrying.
    pub fn next_delay(&mut self, rng: &mut impl rand::Rng) -> Duration {
        let upper = self.upper_bound().as_nanos();
        let half = upper / 2;
        let delay = half + rng.gen_range(0..=upper - half);
        self.failures = self.failures.saturating_add(1);
        // `delay <= upper <= cap`, so it fits a `Duration`.
        Duration::new(
            u64::try_from(delay / NANOS_PER_SEC).unwrap_or(u64::MAX),
            // The remainder of a division by 10^9 fits a u32.
            (delay % NANOS_PER_SEC) as u32,
        )
    }

    /// Forgets past failures: the next delay is back within `[base/2, base]`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures recorded since the last reset (saturating at `u32::MAX`).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// `min(cap, base * 2^failures)`: the upper end of the next delay.
    fn upper_bound(&self) -> Duration {
        // Doubling stops at `cap`, and a nonzero `Duration` reaches `Duration::MAX` within
        // ~95 doublings, so this loop is short and cannot overflow for any `failures`.
        let mut d = self.base.min(self.cap);
        for _ in 0..self.failures {
            if d >= self.cap || d.is_zero() {
                break;
            }
            d = d.saturating_mul(2).min(self.cap);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{rngs::StdRng, SeedableRng};

    /// `min(cap, base * 2^n)` in nanoseconds, computed independently of the implementation.
    fn reference_upper(base: Duration, cap: Duration, n: u32) -> u128 {
        let (base, cap) = (base.as_nanos(), cap.as_nanos());
        let scaled = if base == 0 {
            0
        } else if n >= 128 {
            u128::MAX
        } else {
            base.saturating_mul(1u128 << n)
        };
        scaled.min(cap)
    }

    /// Durations from zero to `Duration::MAX`, biased towards realistic sizes.
    fn duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            Just(Duration::ZERO),
            Just(Duration::MAX),
            (0u64..=1_000_000_000).prop_map(Duration::from_nanos),
            (0u64..=100_000).prop_map(Duration::from_millis),
            (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        ]
    }

    proptest! {
        #[test]
        fn delays_stay_within_schedule(
            base in duration(),
            cap in duration(),
            failures in prop_oneof![0u32..70, Just(1000u32)],
            seed in any::<u64>(),
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut backoff = Backoff::new(base, cap);
            let mut previous_upper = Duration::ZERO;
            for n in 0..=failures {
                let upper = backoff.upper_bound();
                prop_assert_eq!(upper.as_nanos(), reference_upper(base, cap, n));
                prop_assert!(upper >= previous_upper, "upper bound decreased at n = {}", n);
                previous_upper = upper;

                let delay = backoff.next_delay(&mut rng);
                prop_assert!(delay <= cap, "delay {:?} above cap {:?}", delay, cap);
                prop_assert!(delay.as_nanos() <= reference_upper(base, cap, n));
                prop_assert!(delay.as_nanos() >= reference_upper(base, cap, n) / 2);
                prop_assert_eq!(backoff.failures(), n + 1);
            }
        }

        #[test]
        fn reset_returns_to_base(
            base in duration(),
            cap in duration(),
            failures in 1u32..200,
            seed in any::<u64>(),
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut backoff = Backoff::new(base, cap);
            for _ in 0..failures {
                backoff.next_delay(&mut rng);
            }
            backoff.reset();
            prop_assert_eq!(backoff.failures(), 0);
            let first = base.min(cap);
            let delay = backoff.next_delay(&mut rng);
            prop_assert!(delay <= first, "{:?} > {:?}", delay, first);
            prop_assert!(delay.as_nanos() >= first.as_nanos() / 2);
        }
    }

    #[test]
    fn realistic_schedule_doubles_then_caps() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let uppers: Vec<u64> = (0..12)
            .map(|_| {
                let upper = backoff.upper_bound();
                backoff.next_delay(&mut rng);
                u64::try_from(upper.as_millis()).expect("small")
            })
            .collect();
        assert_eq!(
            uppers,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000]
        );
        for _ in 12..1000 {
            let d = backoff.next_delay(&mut rng);
            assert!(d >= Duration::from_secs(15) && d <= Duration::from_secs(30), "{d:?}");
        }
    }

    #[test]
    fn failures_saturate() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut backoff = Backoff::new(Duration::MAX, Duration::MAX);
        backoff.failures = u32::MAX - 1;
        for _ in 0..2 {
            let d = backoff.next_delay(&mut rng);
            assert!(d >= Duration::MAX / 2, "{d:?}");
        }
        assert_eq!(backoff.failures(), u32::MAX);
    }

    /// Jitter is real: delays spread over `[d/2, d]` rather than sticking to one end.
    #[test]
    fn jitter_spreads_over_the_range() {
        let mut rng = StdRng::seed_from_u64(3);
        let base = Duration::from_secs(1);
        let mut backoff = Backoff::new(base, base);
        let delays: Vec<Duration> = (0..1000).map(|_| backoff.next_delay(&mut rng)).collect();
        let min = delays.iter().min().copied().expect("nonempty");
        let max = delays.iter().max().copied().expect("nonempty");
        assert!(min >= base / 2 && min < base * 11 / 20, "{min:?}");
        assert!(max <= base && max > base * 19 / 20, "{max:?}");
    }
}

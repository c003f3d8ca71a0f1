//! Per-credential rate limits: `requests` per `per_seconds`, enforced with GCRA (the generic
//! cell rate algorithm): a burst of up to `requests` at once, then one request every
//! `per_seconds / requests`.
//!
//! The state is one number, the theoretical arrival time (TAT). Nodes share it in the
//! database and take several requests from it at once ([`RateLimit::take`]), to allow them
//! from memory for at most [`RateLimit::lease_nanos`]; while the database is away each node
//! keeps its own ([`RateLimit::decide`]).

use serde::{Deserialize, Serialize};

/// Largest quota and window accepted.
pub const MAX_REQUESTS: u32 = 1_000_000;
pub const MAX_WINDOW_SECONDS: u32 = 86_400;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    pub per_seconds: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "requests must be 1 to 1000000 and per_seconds 1 to 86400, for example {{\"requests\": 100, \"per_seconds\": 60}}"
)]
pub struct InvalidRateLimit;

impl RateLimit {
    pub fn new(requests: u32, per_seconds: u32) -> Result<Self, InvalidRateLimit> {
        if (1..=MAX_REQUESTS).contains(&requests) && (1..=MAX_WINDOW_SECONDS).contains(&per_seconds)
        {
            Ok(Self {
                requests,
                per_seconds,
            })
        } else {
            Err(InvalidRateLimit)
        }
    }

    /// Nanoseconds between requests at the sustained rate.
    pub fn emission_interval_nanos(self) -> u64 {
        u64::from(self.per_seconds) * 1_000_000_000 / u64::from(self.requests)
    }

    /// How far ahead of now the theoretical arrival time may run: a full burst.
    pub fn burst_tolerance_nanos(self) -> u64 {
        u64::from(self.per_seconds) * 1_000_000_000 - self.emission_interval_nanos()
    }

    /// Whether a credential limited to `self` is held at least as tightly as by `cap`: no
    /// bigger burst and no faster sustained rate. A credential may grant only such limits.
    pub fn is_within(self, cap: RateLimit) -> bool {
        let rate = u64::from(self.requests) * u64::from(cap.per_seconds);
        let cap_rate = u64::from(cap.requests) * u64::from(self.per_seconds);
        self.requests <= cap.requests && rate <= cap_rate
    }

    /// The limit's window, `per_seconds`, in nanoseconds.
    pub fn window_nanos(self) -> u64 {
        u64::from(self.per_seconds) * 1_000_000_000
    }

    /// How long requests taken from the shared state may be held before they are void: a
    /// tenth of the window, at most one second. Any request allowed in an interval was taken
    /// at most this long before it, which bounds what leases add to GCRA's own bound: a tenth
    /// of the allowance.
    pub fn lease_nanos(self) -> u64 {
        (self.window_nanos() / 10).min(1_000_000_000)
    }

    /// Takes up to `want` requests at once from the shared state `tat` at `now` (both in Unix
    /// nanoseconds): as many as GCRA would allow one after the other at `now`. Taking none
    /// (`want` 0) only brings the state within the window, as [`Self::decide`] does.
    pub fn take(self, tat: i64, now: i64, want: u32) -> Take {
        let interval = i64::try_from(self.emission_interval_nanos()).unwrap_or(i64::MAX);
        let window = i64::try_from(self.window_nanos()).unwrap_or(i64::MAX);
        let tat = tat.min(now.saturating_add(window));
        let base = tat.max(now);
        // Request j (from 0) conforms while base + j * interval - now <= window - interval.
        let conforming =
            ((now.saturating_add(window) - base) / interval).clamp(0, i64::from(self.requests));
        let conforming = u32::try_from(conforming).unwrap_or(0);
        let taken = want.min(conforming);
        let new_tat = base + i64::from(taken) * interval;
        let remaining = conforming - taken;
        let ahead = u64::try_from(new_tat - now).unwrap_or(0);
        Take {
            taken,
            new_tat,
            remaining,
            reset_nanos: ahead,
            retry_after_nanos: if remaining == 0 {
                // The next request conforms once the TAT is no more than the tolerance ahead.
                ahead.saturating_sub(self.burst_tolerance_nanos())
            } else {
                0
            },
        }
    }

    /// One GCRA step: given the theoretical arrival time `tat` and the time `now` (both in
    /// nanoseconds on one monotonic clock), whether the request is allowed and the new TAT.
    ///
    /// A TAT more than one window ahead can only come from a stricter limit that was since
    /// changed to this one; it counts as this limit's quota spent, no more, and the new TAT
    /// (to be stored even when the request is refused) is brought back within the window.
    pub fn decide(self, tat: u64, now: u64) -> Decision {
        let interval = self.emission_interval_nanos();
        let tolerance = self.burst_tolerance_nanos();
        let window = u64::from(self.per_seconds) * 1_000_000_000;
        let tat = tat.min(now.saturating_add(window));
        let base = tat.max(now);
        if base - now > tolerance {
            let wait = base - now - tolerance;
            return Decision {
                allowed: false,
                new_tat: tat,
                remaining: 0,
                reset_nanos: base - now,
                retry_after_nanos: wait,
            };
        }
        let new_tat = base + interval;
        let used = new_tat - now;
        Decision {
            allowed: true,
            new_tat,
            remaining: u32::try_from(window.saturating_sub(used) / interval).unwrap_or(u32::MAX),
            reset_nanos: used,
            retry_after_nanos: 0,
        }
    }
}

/// The outcome of one GCRA step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub new_tat: u64,
    /// Requests left in the current window.
    pub remaining: u32,
    /// Nanoseconds until the quota is whole again.
    pub reset_nanos: u64,
    /// When refused, nanoseconds until a request would be allowed.
    pub retry_after_nanos: u64,
}

/// What one [`RateLimit::take`] gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Take {
    /// Requests taken, up to what was asked for.
    pub taken: u32,
    /// The state to store.
    pub new_tat: i64,
    /// Requests still conforming after these.
    pub remaining: u32,
    /// Nanoseconds until the quota is whole again.
    pub reset_nanos: u64,
    /// With none left: nanoseconds until the next request conforms.
    pub retry_after_nanos: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn limits_are_validated() {
        assert!(RateLimit::new(100, 60).is_ok());
        assert!(RateLimit::new(0, 60).is_err());
        assert!(RateLimit::new(1, 0).is_err());
        assert!(RateLimit::new(MAX_REQUESTS + 1, 1).is_err());
        assert!(RateLimit::new(1, MAX_WINDOW_SECONDS + 1).is_err());
    }

    #[test]
    fn a_burst_of_the_quota_passes_then_one_per_interval() {
        let limit = RateLimit::new(5, 10).unwrap();
        let start = 1_000 * SECOND;
        let mut tat = 0;
        for expected_remaining in (0..5).rev() {
            let decision = limit.decide(tat, start);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
            tat = decision.new_tat;
        }
        let refused = limit.decide(tat, start);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(
            refused.retry_after_nanos,
            2 * SECOND,
            "one request every 2 s"
        );
        assert_eq!(refused.reset_nanos, 10 * SECOND);
        assert!(limit.decide(tat, start + 2 * SECOND).allowed);
        // After a whole window of silence, the whole quota is back.
        let later = limit.decide(tat, start + 10 * SECOND);
        assert!(later.allowed);
        assert_eq!(later.remaining, 4);
    }

    #[test]
    fn allows_a_burst_and_then_the_sustained_rate_only() {
        let limit = RateLimit::new(3, 1).unwrap();
        let mut tat = 0;
        let mut allowed_at = Vec::new();
        // A request every 10 ms for 5 seconds.
        for step in 0..500u64 {
            let now = 10 * SECOND + step * 10_000_000;
            let decision = limit.decide(tat, now);
            if decision.allowed {
                tat = decision.new_tat;
                allowed_at.push(now);
            }
        }
        // Over any stretch of time, at most one burst plus the sustained rate gets through.
        for (i, &at) in allowed_at.iter().enumerate() {
            for (j, &later) in allowed_at.iter().enumerate().skip(i) {
                let elapsed = later - at;
                let most = 3 + elapsed * 3 / SECOND;
                assert!(
                    (j - i + 1) as u64 <= most,
                    "{} requests in {elapsed} ns",
                    j - i + 1
                );
            }
        }
        // 3 at once, then 3 a second for the remaining 4.99 s.
        assert_eq!(allowed_at.len(), 3 + 14);
    }

    #[test]
    fn a_loosened_limit_carries_over_no_more_than_its_own_window() {
        let strict = RateLimit::new(2, 86_400).unwrap();
        let loose = RateLimit::new(10, 60).unwrap();
        let now = 1_000 * SECOND;
        let mut tat = 0;
        for _ in 0..2 {
            tat = strict.decide(tat, now).new_tat;
        }
        assert!(!strict.decide(tat, now).allowed);
        // Under the new limit the quota counts as spent, and refills at the new rate.
        let refused = loose.decide(tat, now);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_nanos, 6 * SECOND);
        assert_eq!(refused.new_tat, now + 60 * SECOND);
        assert!(loose.decide(refused.new_tat, now + 6 * SECOND).allowed);
    }

    #[test]
    fn a_take_gives_what_single_steps_would_allow_at_that_moment() {
        let limit = RateLimit::new(5, 10).unwrap();
        let now = 1_000 * SECOND as i64;
        let first = limit.take(0, now, 3);
        assert_eq!((first.taken, first.remaining), (3, 2));
        assert_eq!(first.new_tat, now + 6 * SECOND as i64);
        assert_eq!(first.retry_after_nanos, 0);
        let second = limit.take(first.new_tat, now, 10);
        assert_eq!((second.taken, second.remaining), (2, 0));
        assert_eq!(second.reset_nanos, 10 * SECOND);
        assert_eq!(second.retry_after_nanos, 2 * SECOND, "one every 2 s");
        // The same as five single steps.
        let mut tat = 0u64;
        for _ in 0..5 {
            tat = limit.decide(tat, now as u64).new_tat;
        }
        assert_eq!(tat as i64, second.new_tat);
        assert!(!limit.decide(tat, now as u64).allowed);

        let refused = limit.take(second.new_tat, now + SECOND as i64, 1);
        assert_eq!((refused.taken, refused.remaining), (0, 0));
        assert_eq!(refused.new_tat, second.new_tat, "nothing changes");
        assert_eq!(refused.retry_after_nanos, SECOND);
        let later = limit.take(second.new_tat, now + 4 * SECOND as i64, 5);
        assert_eq!(later.taken, 2, "two intervals have passed");

        // Giving requests back is taking their intervals off the state.
        let returned = limit.take(second.new_tat - 2 * 2 * SECOND as i64, now, 5);
        assert_eq!(returned.taken, 2);
        // A state from a stricter limit counts as one window spent, no more.
        let strict = limit.take(now + 1_000 * SECOND as i64, now, 1);
        assert_eq!(strict.new_tat, now + 10 * SECOND as i64);
        assert_eq!(strict.retry_after_nanos, 2 * SECOND);
    }

    #[test]
    fn leases_last_a_tenth_of_the_window_and_at_most_a_second() {
        assert_eq!(RateLimit::new(10, 1).unwrap().lease_nanos(), SECOND / 10);
        assert_eq!(RateLimit::new(10, 5).unwrap().lease_nanos(), SECOND / 2);
        assert_eq!(RateLimit::new(10, 60).unwrap().lease_nanos(), SECOND);
    }

    #[test]
    fn a_limit_is_within_another_when_neither_burst_nor_rate_is_larger() {
        let cap = RateLimit::new(100, 60).unwrap();
        assert!(cap.is_within(cap));
        assert!(RateLimit::new(10, 60).unwrap().is_within(cap));
        assert!(RateLimit::new(100, 120).unwrap().is_within(cap));
        assert!(
            !RateLimit::new(101, 60).unwrap().is_within(cap),
            "bigger burst"
        );
        assert!(
            !RateLimit::new(100, 59).unwrap().is_within(cap),
            "faster rate"
        );
        assert!(!RateLimit::new(2, 1).unwrap().is_within(cap), "faster rate");
        let daily = RateLimit::new(2, 86_400).unwrap();
        assert!(!RateLimit::new(1, 1).unwrap().is_within(daily));
        assert!(RateLimit::new(1, 86_400).unwrap().is_within(daily));
    }
}

//! The time, as the store, verification and the services see it: one clock per node, given
//! to the store when it opens and to the server's configuration, so that a test can move it.
//!
//! [`Clock::system`] (the default) is wall-clock UTC in whole seconds, kept in an atomic that
//! one background thread refreshes every 50 ms, so that a read costs one atomic load instead
//! of a system call (expiry and last use need no finer grain), and nanoseconds on a monotonic
//! clock for rate limits, which do. Tests replace it with a [`ManualClock`], which moves only
//! when told, so that expiry, cache ageing and rate limits are tested without waiting.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use keyward_core::Timestamp;

const REFRESH: Duration = Duration::from_millis(50);

static NOW: AtomicI64 = AtomicI64::new(0);
static TICKER: OnceLock<()> = OnceLock::new();
static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// Where the server reads the time. Cloning is cheap.
#[derive(Clone, Default)]
pub struct Clock {
    /// `None` for the system's clock.
    manual: Option<Arc<ManualTime>>,
}

struct ManualTime {
    seconds: AtomicI64,
    nanos: AtomicU64,
    /// Unix nanoseconds and the monotonic nanoseconds when it started.
    start: (i64, u64),
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// The current time (the system's at most 50 ms old).
    pub fn now(&self) -> Timestamp {
        match &self.manual {
            None => coarse_now(),
            Some(time) => Timestamp::from_unix_seconds(time.seconds.load(Ordering::SeqCst)),
        }
    }

    /// Unix nanoseconds, for state shared with other nodes (rate limits): the system's
    /// time read now, or a manual clock's start plus how far it has moved.
    pub fn unix_nanos(&self) -> i64 {
        match &self.manual {
            None => Timestamp::unix_nanos_now(),
            Some(time) => {
                let moved = time.nanos.load(Ordering::SeqCst) - time.start.1;
                time.start.0 + i64::try_from(moved).unwrap_or(i64::MAX)
            }
        }
    }

    /// Nanoseconds on a monotonic clock (the system's started with the process).
    pub fn monotonic_nanos(&self) -> u64 {
        match &self.manual {
            None => monotonic_nanos(),
            Some(time) => time.nanos.load(Ordering::SeqCst),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.manual {
            None => "Clock::system",
            Some(_) => "Clock::manual",
        })
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it: for tests.
#[cfg(any(test, feature = "testing"))]
pub struct ManualClock(Arc<ManualTime>);

#[cfg(any(test, feature = "testing"))]
impl ManualClock {
    /// Starts where the system's clock is now.
    pub fn starting_now() -> Self {
        let (seconds, nanos) = (Timestamp::now().unix_seconds(), monotonic_nanos());
        Self(Arc::new(ManualTime {
            seconds: AtomicI64::new(seconds),
            nanos: AtomicU64::new(nanos),
            start: (seconds * 1_000_000_000, nanos),
        }))
    }

    /// The clock to give the store and the server.
    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(self.0.clone()),
        }
    }

    /// Moves both the wall clock and the monotonic one forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.nanos.fetch_add(nanos, Ordering::SeqCst);
        let seconds = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.0.seconds.fetch_add(seconds, Ordering::SeqCst);
    }
}

/// The system's time, at most 50 ms old.
fn coarse_now() -> Timestamp {
    TICKER.get_or_init(|| {
        NOW.store(Timestamp::now().unix_seconds(), Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("keyward-clock".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(REFRESH);
                    NOW.store(Timestamp::now().unix_seconds(), Ordering::Relaxed);
                }
            });
        if let Err(error) = spawned {
            // Without the thread the clock would stand still; better to fail loudly.
            panic!("cannot start the clock thread: {error}");
        }
    });
    Timestamp::from_unix_seconds(NOW.load(Ordering::Relaxed))
}

/// Nanoseconds on a monotonic clock that started with the process.
pub fn monotonic_nanos() -> u64 {
    let origin = ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_follows_the_system_clock() {
        let system = Timestamp::now().unix_seconds();
        let coarse = Clock::system().now().unix_seconds();
        assert!((coarse - system).abs() <= 1, "{coarse} vs {system}");
        let a = monotonic_nanos();
        assert!(monotonic_nanos() >= a);
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let manual = ManualClock::starting_now();
        let clock = manual.clock();
        let (then, nanos) = (clock.now(), clock.monotonic_nanos());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!((clock.now(), clock.monotonic_nanos()), (then, nanos));
        manual.advance(Duration::from_millis(2_500));
        assert_eq!(clock.now(), then.plus_seconds(2));
        assert_eq!(clock.monotonic_nanos(), nanos + 2_500_000_000);
        let unix = then.unix_seconds() * 1_000_000_000 + 2_500_000_000;
        assert_eq!(clock.unix_nanos(), unix);
        let system = Clock::system().unix_nanos();
        assert!((system / 1_000_000_000 - Timestamp::now().unix_seconds()).abs() <= 1);
    }
}

//! Clocks cheap enough to read on every verification.
//!
//! [`now`] is wall-clock UTC in whole seconds, kept in an atomic that one background thread
//! refreshes every 50 ms: a read costs one atomic load instead of a system call. Expiry and
//! last use need no finer grain. [`monotonic_nanos`] is for rate limits, which do.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use keyward_core::Timestamp;

const REFRESH: Duration = Duration::from_millis(50);

static NOW: AtomicI64 = AtomicI64::new(0);
static TICKER: OnceLock<()> = OnceLock::new();
static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// The current time, at most 50 ms old.
pub fn now() -> Timestamp {
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
        let coarse = now().unix_seconds();
        assert!((coarse - system).abs() <= 1, "{coarse} vs {system}");
        std::thread::sleep(Duration::from_millis(1100));
        assert!(now().unix_seconds() > coarse, "it moves");
        let a = monotonic_nanos();
        assert!(monotonic_nanos() >= a);
    }
}

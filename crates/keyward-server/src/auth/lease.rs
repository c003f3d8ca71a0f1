//! How much a node takes from the database at once, for credits and for rate limits alike:
//! about a lease's span of the demand it has seen since its last take, so that a busy
//! credential costs about one database write per span per node.

use std::sync::atomic::{AtomicI64, Ordering};

/// The shortest time a rate is measured over, so that a burst right after a take does not
/// read as a huge rate.
const MIN_MEASURE_NANOS: u64 = 100_000_000;

/// Demand seen since the last take, and when that was.
#[derive(Debug, Default)]
pub(super) struct Demand {
    /// Units asked for since the last take (allowed or refused).
    asked: AtomicI64,
}

/// The last take, kept under the account's lock for taking (one take at a time).
#[derive(Debug, Default)]
pub(super) struct Taking {
    last_take: Option<u64>,
    /// The size the last take asked for.
    last_size: i64,
}

impl Demand {
    pub(super) fn add(&self, units: i64) {
        self.asked.fetch_add(units, Ordering::Relaxed);
    }

    /// What to take now at `monotonic`: the demand since the last take scaled to `span_nanos`,
    /// at most twice the last take (so that it grows by doubling) and within `1..=max`. The
    /// first take asks for what was asked so far.
    pub(super) fn size(
        &self,
        taking: &mut Taking,
        monotonic: u64,
        span_nanos: u64,
        max: i64,
    ) -> i64 {
        let asked = self.asked.swap(0, Ordering::Relaxed).max(1);
        let size = match taking.last_take {
            None => asked,
            Some(last) => {
                let elapsed = monotonic.saturating_sub(last).max(MIN_MEASURE_NANOS);
                let scaled =
                    u128::from(span_nanos) * u128::from(asked.unsigned_abs()) / u128::from(elapsed);
                i64::try_from(scaled)
                    .unwrap_or(max)
                    .min(taking.last_size.saturating_mul(2))
            }
        };
        let size = size.clamp(1, max.max(1));
        taking.last_take = Some(monotonic);
        taking.last_size = size;
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn the_size_follows_the_rate_grows_by_doubling_and_stays_within_bounds() {
        let demand = Demand::default();
        let mut taking = Taking::default();
        demand.add(3);
        assert_eq!(
            demand.size(&mut taking, SECOND, SECOND, 1_000),
            3,
            "the first"
        );
        // 100 a second for a second: doubling first.
        demand.add(100);
        assert_eq!(demand.size(&mut taking, 2 * SECOND, SECOND, 1_000), 6);
        demand.add(100);
        assert_eq!(demand.size(&mut taking, 3 * SECOND, SECOND, 1_000), 12);
        // Half a span's worth, once grown.
        for _ in 0..5 {
            demand.add(100);
            demand.size(&mut taking, 4 * SECOND, SECOND / 2, 1_000);
        }
        demand.add(100);
        assert_eq!(demand.size(&mut taking, 5 * SECOND, SECOND / 2, 1_000), 50);
        // A burst right after a take is measured over 100 ms, and the bounds hold.
        demand.add(1_000_000);
        assert_eq!(demand.size(&mut taking, 5 * SECOND + 1, SECOND, 80), 80);
        assert_eq!(demand.size(&mut taking, 6 * SECOND, SECOND, 80), 1);
    }
}

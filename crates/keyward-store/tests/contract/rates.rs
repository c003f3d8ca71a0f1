use keyward_core::{CredentialId, CredentialKind, RateLimit};
use keyward_store::{RateBucket, RateReturn, Store};

const SECOND: i64 = 1_000_000_000;
const NOW: i64 = 1_700_000_000 * SECOND;

fn new_bucket() -> RateBucket {
    RateBucket::credential(CredentialId::generate(CredentialKind::ApiKey))
}

pub async fn rate_buckets_hand_out_what_gcra_allows_and_take_back_the_unspent(store: &dyn Store) {
    let bucket = new_bucket();
    let limit = RateLimit::new(10, 10).unwrap();
    // A new bucket is whole: the burst, and no more.
    let first = store.take_rate(&bucket, limit, 4, None, NOW).await.unwrap();
    assert_eq!((first.taken, first.remaining), (4, 6));
    let second = store
        .take_rate(&bucket, limit, 100, None, NOW)
        .await
        .unwrap();
    assert_eq!((second.taken, second.remaining), (6, 0));
    assert_eq!(second.retry_after_nanos, SECOND as u64, "one a second");
    // Three of the second take not allowed go back, and can be taken again.
    let back = RateReturn {
        taken_to: second.new_tat,
        unspent_nanos: 3 * SECOND,
    };
    let returned = store
        .take_rate(&bucket, limit, 5, Some(back), NOW)
        .await
        .unwrap();
    assert_eq!(returned.taken, 3);
    // Time refills at the limit's rate.
    let later = store
        .take_rate(&bucket, limit, 5, None, NOW + 2 * SECOND)
        .await
        .unwrap();
    assert_eq!(later.taken, 2);
    // Other buckets are apart.
    let other = store.take_rate(&new_bucket(), limit, 10, None, NOW).await;
    assert_eq!(other.unwrap().taken, 10);
}

/// A give-back after another take would move that take's requests into the past: it is
/// dropped.
pub async fn a_give_back_counts_only_while_no_other_take_came_since(store: &dyn Store) {
    let bucket = new_bucket();
    let limit = RateLimit::new(100, 5).unwrap();
    // Node A takes the burst and allows none of it.
    let a = store
        .take_rate(&bucket, limit, 100, None, NOW)
        .await
        .unwrap();
    assert_eq!(a.taken, 100);
    // Node B takes what has come back by 4.9 s.
    let b = store
        .take_rate(&bucket, limit, 100, None, NOW + 4_900_000_000)
        .await
        .unwrap();
    assert_eq!(b.taken, 98);
    // A gives its 100 back at 5 s: too late, B took since; nothing more conforms.
    let back = RateReturn {
        taken_to: a.new_tat,
        unspent_nanos: 100 * limit.emission_interval_nanos() as i64,
    };
    let after = store
        .take_rate(&bucket, limit, 100, Some(back), NOW + 5 * SECOND)
        .await
        .unwrap();
    assert_eq!(after.taken, 2, "only what accrued since B's take");
}

/// A node whose clock runs behind finds nothing, and leaves the state where the node ahead
/// put it: the node ahead gains its skew once, not at each take.
pub async fn a_slow_clock_never_hands_a_fast_one_more(store: &dyn Store) {
    let bucket = new_bucket();
    let limit = RateLimit::new(10, 10).unwrap();
    let skew = 3 * SECOND;
    let fast = store
        .take_rate(&bucket, limit, 100, None, NOW + skew)
        .await
        .unwrap();
    assert_eq!(fast.taken, 10);
    for _ in 0..3 {
        let slow = store.take_rate(&bucket, limit, 1, None, NOW).await.unwrap();
        assert_eq!(slow.taken, 0);
        let again = store
            .take_rate(&bucket, limit, 100, None, NOW + skew)
            .await
            .unwrap();
        assert_eq!(again.taken, 0, "the slow node gave the fast one nothing");
    }
    // A looser limit counts the stricter one's spending as one of its windows, no more.
    let strict = RateLimit::new(2, 86_400).unwrap();
    let spent = new_bucket();
    assert_eq!(
        store
            .take_rate(&spent, strict, 2, None, NOW)
            .await
            .unwrap()
            .taken,
        2
    );
    let loose = RateLimit::new(10, 10).unwrap();
    let refused = store.take_rate(&spent, loose, 1, None, NOW).await.unwrap();
    assert_eq!(
        (refused.taken, refused.retry_after_nanos),
        (0, SECOND as u64)
    );
    let allowed = store
        .take_rate(&spent, loose, 1, None, NOW + SECOND)
        .await
        .unwrap();
    assert_eq!(allowed.taken, 1);
}

/// Buckets a day behind are deleted, and read as whole as they were; newer ones stay.
pub async fn rate_buckets_a_day_old_are_pruned_and_read_the_same(store: &dyn Store) {
    let old = new_bucket();
    let recent = new_bucket();
    let limit = RateLimit::new(10, 60).unwrap();
    assert_eq!(
        store
            .take_rate(&old, limit, 10, None, NOW)
            .await
            .unwrap()
            .taken,
        10
    );
    let later = NOW + 2 * 86_400 * SECOND;
    assert_eq!(
        store
            .take_rate(&recent, limit, 10, None, later)
            .await
            .unwrap()
            .taken,
        10
    );
    assert_eq!(store.prune_rate_buckets(later, 100).await.unwrap(), 1);
    assert_eq!(store.prune_rate_buckets(later, 100).await.unwrap(), 0);
    // The pruned one is whole, as it was; the recent one is still spent.
    assert_eq!(
        store
            .take_rate(&old, limit, 20, None, later)
            .await
            .unwrap()
            .taken,
        10
    );
    assert_eq!(
        store
            .take_rate(&recent, limit, 1, None, later)
            .await
            .unwrap()
            .taken,
        0
    );
}

pub async fn concurrent_rate_takes_never_hand_out_more_than_the_burst(store: &dyn Store) {
    let bucket = new_bucket();
    let limit = RateLimit::new(50, 3_600).unwrap();
    let take = || store.take_rate(&bucket, limit, 7, None, NOW);
    let (a, b, c, d) = tokio::join!(take(), take(), take(), take());
    let (e, f, g, h) = tokio::join!(take(), take(), take(), take());
    let taken: u32 = [a, b, c, d, e, f, g, h]
        .into_iter()
        .map(|take| take.unwrap().taken)
        .sum();
    assert_eq!(taken, 50, "the burst handed out once");
}

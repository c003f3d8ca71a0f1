use keyward_core::{CredentialId, CredentialKind, RateLimit};
use keyward_store::{RateBucket, Store};

const SECOND: i64 = 1_000_000_000;

pub async fn rate_buckets_hand_out_what_gcra_allows_and_take_back_the_unspent(store: &dyn Store) {
    let bucket = RateBucket::credential(CredentialId::generate(CredentialKind::ApiKey));
    let limit = RateLimit::new(10, 10).unwrap();
    let now = 1_700_000_000 * SECOND;
    // A new bucket is whole: the burst, and no more.
    let first = store.take_rate(&bucket, limit, 4, 0, now).await.unwrap();
    assert_eq!((first.taken, first.remaining), (4, 6));
    let second = store.take_rate(&bucket, limit, 100, 0, now).await.unwrap();
    assert_eq!((second.taken, second.remaining), (6, 0));
    assert_eq!(second.retry_after_nanos, SECOND as u64, "one a second");
    let refused = store.take_rate(&bucket, limit, 1, 0, now).await.unwrap();
    assert_eq!(refused.taken, 0);
    // Three requests not allowed go back, and can be taken again.
    let returned = store
        .take_rate(&bucket, limit, 5, 3 * SECOND, now)
        .await
        .unwrap();
    assert_eq!(returned.taken, 3);
    // Time refills at the limit's rate.
    let later = store
        .take_rate(&bucket, limit, 5, 0, now + 2 * SECOND)
        .await
        .unwrap();
    assert_eq!(later.taken, 2);
    // Other buckets are apart.
    let other = RateBucket::credential(CredentialId::generate(CredentialKind::ApiKey));
    assert_eq!(
        store
            .take_rate(&other, limit, 10, 0, now)
            .await
            .unwrap()
            .taken,
        10
    );
}

pub async fn concurrent_rate_takes_never_hand_out_more_than_the_burst(store: &dyn Store) {
    let bucket = RateBucket::credential(CredentialId::generate(CredentialKind::ApiKey));
    let limit = RateLimit::new(50, 3_600).unwrap();
    let now = 1_700_000_000 * SECOND;
    let take = || store.take_rate(&bucket, limit, 7, 0, now);
    let (a, b, c, d) = tokio::join!(take(), take(), take(), take());
    let (e, f, g, h) = tokio::join!(take(), take(), take(), take());
    let taken: u32 = [a, b, c, d, e, f, g, h]
        .into_iter()
        .map(|take| take.unwrap().taken)
        .sum();
    assert_eq!(taken, 50, "the burst handed out once");
}

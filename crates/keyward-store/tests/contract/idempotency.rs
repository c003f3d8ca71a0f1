use keyward_core::Timestamp;
use keyward_store::{IdempotencyClaim, IdempotentAnswer, Store};

const DAY: i64 = 86_400;

fn answer(body: Option<&str>, secret: Option<&str>) -> IdempotentAnswer {
    IdempotentAnswer {
        status: 201,
        location: Some("/v1/projects/prj_1".into()),
        body: body.map(str::to_owned),
        secret: secret.map(str::to_owned),
    }
}

pub async fn a_key_is_claimed_once_answered_and_kept_for_a_day(store: &dyn Store) {
    let now = Timestamp::now();
    let (lease, day_ago) = (now.plus_seconds(60), now.plus_seconds(-DAY));
    let claim = |caller: &'static str, key: &'static str, fingerprint: [u8; 32]| async move {
        store
            .claim_idempotency_key(caller, key, &fingerprint, lease, day_ago)
            .await
            .unwrap()
    };
    let (body, other_body) = ([1; 32], [2; 32]);
    assert_eq!(claim("key_a", "k1", body).await, IdempotencyClaim::Claimed);
    assert_eq!(claim("key_a", "k1", body).await, IdempotencyClaim::InFlight);
    assert_eq!(
        claim("key_a", "k1", other_body).await,
        IdempotencyClaim::Reused
    );
    // Another caller's key of the same name is another key.
    assert_eq!(
        claim("key_b", "k1", other_body).await,
        IdempotencyClaim::Claimed
    );

    let kept = answer(Some(r#"{"id":"prj_1"}"#), None);
    store
        .answer_idempotency_key("key_a", "k1", &kept)
        .await
        .unwrap();
    assert_eq!(
        claim("key_a", "k1", body).await,
        IdempotencyClaim::Answered(kept.clone())
    );
    assert_eq!(
        claim("key_a", "k1", other_body).await,
        IdempotencyClaim::Reused
    );
    // An answered key is not given back.
    store.release_idempotency_key("key_a", "k1").await.unwrap();
    assert_eq!(
        claim("key_a", "k1", body).await,
        IdempotencyClaim::Answered(kept)
    );

    // A failed request gives its key back: the retry runs.
    assert_eq!(claim("key_a", "k2", body).await, IdempotencyClaim::Claimed);
    store.release_idempotency_key("key_a", "k2").await.unwrap();
    assert_eq!(
        claim("key_a", "k2", other_body).await,
        IdempotencyClaim::Claimed
    );

    // An answer that showed a secret keeps what it created, not the body.
    let shown = answer(None, Some("API key"));
    store
        .answer_idempotency_key("key_a", "k2", &shown)
        .await
        .unwrap();
    assert_eq!(
        claim("key_a", "k2", other_body).await,
        IdempotencyClaim::Answered(shown)
    );
}

pub async fn abandoned_and_expired_claims_count_as_none(store: &dyn Store) {
    let now = Timestamp::now();
    let day_ago = now.plus_seconds(-DAY);
    let fingerprint = [7; 32];
    // A lease already over: the node that claimed it died before answering.
    let over = now.plus_seconds(-1);
    assert_eq!(
        store
            .claim_idempotency_key("key_a", "k", &fingerprint, over, day_ago)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    let lease = now.plus_seconds(60);
    assert_eq!(
        store
            .claim_idempotency_key("key_a", "k", &fingerprint, lease, day_ago)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed,
        "taken over"
    );
    store
        .answer_idempotency_key("key_a", "k", &answer(Some("{}"), None))
        .await
        .unwrap();
    // A day on, the key is free again, for any body.
    let tomorrow = now.plus_seconds(DAY + 1);
    assert_eq!(
        store
            .claim_idempotency_key("key_a", "k", &[8; 32], lease, tomorrow)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );

    // Pruning deletes what is older than the cut, in batches.
    for key in ["p1", "p2", "p3"] {
        store
            .claim_idempotency_key("key_c", key, &fingerprint, lease, day_ago)
            .await
            .unwrap();
    }
    let later = now.plus_seconds(10);
    assert_eq!(store.prune_idempotency_keys(later, 2).await.unwrap(), 2);
    assert_eq!(store.prune_idempotency_keys(later, 10).await.unwrap(), 2);
    assert_eq!(store.prune_idempotency_keys(later, 10).await.unwrap(), 0);
}

use keyward_core::{CredentialId, CredentialKind, Timestamp};
use keyward_store::{Store, UsageCount, UsageRow};

use crate::organization;

fn count(credential: CredentialId, hour: i64, outcome: &'static str, n: i64) -> UsageCount {
    UsageCount {
        credential,
        hour: Timestamp::from_unix_seconds(hour),
        outcome,
        route: None,
        count: n,
    }
}

fn row(hour: i64, outcome: &str, n: u64) -> UsageRow {
    UsageRow {
        hour: Timestamp::from_unix_seconds(hour),
        outcome: outcome.to_owned(),
        route: None,
        count: n,
    }
}

pub async fn usage_counts_add_up_per_hour_and_outcome_and_are_pruned(store: &dyn Store) {
    let (acme, key) = organization(store, "Acme").await;
    let (globex, _) = organization(store, "Globex").await;
    let h0 = 1_800_000_000 / 3_600 * 3_600;
    let h1 = h0 + 3_600;
    // Two nodes' batches for the same hours add up; a credential that does not exist is
    // dropped without failing the batch.
    store
        .add_usage_counts(&[
            count(key, h0, "allowed", 5),
            count(key, h0, "rate_limited", 2),
            count(
                CredentialId::generate(CredentialKind::ApiKey),
                h0,
                "allowed",
                9,
            ),
        ])
        .await
        .unwrap();
    store
        .add_usage_counts(&[count(key, h0, "allowed", 3), count(key, h1, "revoked", 1)])
        .await
        .unwrap();
    // Counts under a named route rule are rows of their own.
    let routed = UsageCount {
        route: Some("databases".into()),
        ..count(key, h1, "allowed", 2)
    };
    store
        .add_usage_counts(&[routed.clone(), routed])
        .await
        .unwrap();
    let all = |from, to| {
        store.credential_usage(
            acme,
            key,
            Timestamp::from_unix_seconds(from),
            Timestamp::from_unix_seconds(to),
        )
    };
    assert_eq!(
        all(h0, h1 + 3_600).await.unwrap(),
        [
            row(h0, "allowed", 8),
            row(h0, "rate_limited", 2),
            UsageRow {
                route: Some("databases".into()),
                ..row(h1, "allowed", 4)
            },
            row(h1, "revoked", 1)
        ]
    );
    // `to` is exclusive; another organization sees nothing of it.
    assert_eq!(all(h0, h1).await.unwrap().len(), 2);
    let elsewhere = store
        .credential_usage(
            globex,
            key,
            Timestamp::from_unix_seconds(h0),
            Timestamp::from_unix_seconds(h1 + 3_600),
        )
        .await
        .unwrap();
    assert!(elsewhere.is_empty());

    // The organization's sums, and each credential's.
    let second = crate::new_credential(
        acme,
        keyward_store::Creator::Credential(key),
        None,
        "second",
        crate::all_scopes(),
    );
    let second = store
        .insert_credential(&keyward_store::AuditContext::SYSTEM, second)
        .await
        .unwrap()
        .id;
    store
        .add_usage_counts(&[count(second, h0, "allowed", 4)])
        .await
        .unwrap();
    let from = Timestamp::from_unix_seconds(h0);
    let to = Timestamp::from_unix_seconds(h1 + 3_600);
    assert_eq!(
        store.organization_usage(acme, from, to).await.unwrap(),
        [
            row(h0, "allowed", 12),
            row(h0, "rate_limited", 2),
            UsageRow {
                route: Some("databases".into()),
                ..row(h1, "allowed", 4)
            },
            row(h1, "revoked", 1)
        ]
    );
    assert!(
        store
            .organization_usage(globex, from, to)
            .await
            .unwrap()
            .is_empty()
    );
    let mut each: Vec<_> = store
        .usage_by_credential(acme, from, to)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.credential, r.name.as_str().to_owned(), r.outcome, r.count))
        .collect();
    each.sort();
    let mut expected = vec![
        (key, "bootstrap".to_owned(), "allowed".to_owned(), 12),
        (key, "bootstrap".to_owned(), "rate_limited".to_owned(), 2),
        (key, "bootstrap".to_owned(), "revoked".to_owned(), 1),
        (second, "second".to_owned(), "allowed".to_owned(), 4),
    ];
    expected.sort();
    assert_eq!(each, expected);
    store
        .prune_usage(Timestamp::from_unix_seconds(h1), 100)
        .await
        .unwrap();
    store
        .add_usage_counts(&[
            count(key, h0, "allowed", 8),
            count(key, h0, "rate_limited", 2),
        ])
        .await
        .unwrap();

    // Pruning takes the oldest hours first, in batches.
    assert_eq!(
        store
            .prune_usage(Timestamp::from_unix_seconds(h1), 1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .prune_usage(Timestamp::from_unix_seconds(h1), 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(all(h0, h1 + 3_600).await.unwrap().len(), 2, "h1's two rows");
}

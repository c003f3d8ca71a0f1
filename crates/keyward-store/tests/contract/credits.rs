use keyward_core::{CredentialId, CreditSettings};
use keyward_store::{AuditContext, Creator, CredentialChanges, CreditChange, Store};

use crate::{all_scopes, new_credential, organization};

/// A new key of `org` with `remaining` credits (and no refill).
async fn with_credits(
    store: &dyn Store,
    org: keyward_core::OrganizationId,
    by: CredentialId,
    remaining: i64,
) -> CredentialId {
    let mut new = new_credential(org, Creator::Credential(by), None, "metered", all_scopes());
    new.credits = Some(CreditSettings::new(remaining, None).unwrap());
    store
        .insert_credential(&AuditContext::SYSTEM, new)
        .await
        .unwrap()
        .id
}

async fn change(
    store: &dyn Store,
    org: keyward_core::OrganizationId,
    id: CredentialId,
    credits: CreditChange,
) {
    let changes = CredentialChanges {
        credits: Some(credits),
        ..Default::default()
    };
    store
        .update_credential(&AuditContext::SYSTEM, org, id, changes)
        .await
        .unwrap()
        .unwrap();
}

async fn remaining(store: &dyn Store, id: CredentialId) -> Option<i64> {
    let credits = store.current_credits(id.into()).await.unwrap();
    credits.map(|credits| credits.settings.remaining)
}

pub async fn credits_are_leased_given_back_and_set_in_generations(store: &dyn Store) {
    let (org, owner_key) = organization(store, "Acme").await;
    let id = with_credits(store, org, owner_key, 10).await;
    let lease = store.take_credits(id.into(), 4, 1).await.unwrap().unwrap();
    assert_eq!((lease.taken, lease.remaining, lease.generation), (4, 6, 0));
    assert_eq!((lease.period_start, lease.period_end), (0, i64::MAX));
    // Never more than is left, and nothing when nothing is.
    assert_eq!(
        store
            .take_credits(id.into(), 20, 1)
            .await
            .unwrap()
            .unwrap()
            .taken,
        6
    );
    let none = store.take_credits(id.into(), 5, 1).await.unwrap().unwrap();
    assert_eq!((none.taken, none.remaining), (0, 0));
    // Unspent credits go back to the generation they came from.
    assert!(store.give_back_credits(id.into(), 3, 0, 0).await.unwrap());
    assert_eq!(remaining(store, id).await, Some(3));
    // Setting them starts a generation: what leases held no longer counts.
    change(
        store,
        org,
        id,
        CreditChange::Set(Some(CreditSettings::new(50, None).unwrap())),
    )
    .await;
    let stored = store.current_credits(id.into()).await.unwrap().unwrap();
    assert_eq!((stored.settings.remaining, stored.generation), (50, 1));
    assert!(!store.give_back_credits(id.into(), 2, 0, 0).await.unwrap());
    assert_eq!(remaining(store, id).await, Some(50));
    // Adding keeps the generation.
    change(store, org, id, CreditChange::Add(5)).await;
    let stored = store.current_credits(id.into()).await.unwrap().unwrap();
    assert_eq!((stored.settings.remaining, stored.generation), (55, 1));
    // The record read for verification carries them.
    let record = store.get_credential(org, id).await.unwrap().unwrap();
    assert_eq!(record.credits.map(|c| c.settings.remaining), Some(55));
    // Removed: no limit, nothing to take.
    change(store, org, id, CreditChange::Set(None)).await;
    assert_eq!(store.take_credits(id.into(), 1, 1).await.unwrap(), None);
    assert_eq!(store.current_credits(id.into()).await.unwrap(), None);
    assert!(!store.give_back_credits(id.into(), 2, 1, 0).await.unwrap());
    // Set again: a generation no lease ever had, so no old lease counts again.
    change(
        store,
        org,
        id,
        CreditChange::Set(Some(CreditSettings::new(10, None).unwrap())),
    )
    .await;
    let stored = store.current_credits(id.into()).await.unwrap().unwrap();
    assert_eq!((stored.settings.remaining, stored.generation), (10, 3));
    for old in 0..3 {
        assert!(
            !store
                .give_back_credits(id.into(), 100, old, 0)
                .await
                .unwrap()
        );
    }
    assert_eq!(remaining(store, id).await, Some(10));
    change(store, org, id, CreditChange::Set(None)).await;
    assert_eq!(
        store.take_credits(owner_key.into(), 1, 1).await.unwrap(),
        None
    );
    let refused = store
        .update_credential(
            &AuditContext::SYSTEM,
            org,
            id,
            CredentialChanges {
                credits: Some(CreditChange::Add(1)),
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(keyward_store::StoreError::Invalid {
                field: "credits",
                ..
            })
        ),
        "{refused:?}"
    );
}

pub async fn concurrent_takes_never_hand_out_more_than_the_balance(store: &dyn Store) {
    let (org, owner_key) = organization(store, "Acme").await;
    let id = with_credits(store, org, owner_key, 50).await;
    let take = || store.take_credits(id.into(), 7, 7);
    let (a, b, c, d) = tokio::join!(take(), take(), take(), take());
    let (e, f, g, h) = tokio::join!(take(), take(), take(), take());
    let taken: i64 = [a, b, c, d, e, f, g, h]
        .into_iter()
        .map(|lease| lease.unwrap().unwrap().taken)
        .sum();
    assert_eq!(taken, 50, "every credit handed out once");
    assert_eq!(remaining(store, id).await, Some(0));
}

use keyward_core::{CreditSettings, ExternalId, RateLimit};
use keyward_store::{Actor, AuditContext, Creator, CreditOwner, IdentityLimits, Store, StoreError};

use crate::{all_scopes, new_credential, organization};

pub async fn identity_limits_are_read_with_their_credentials_and_kept_from_limited_keys(
    store: &dyn Store,
) {
    let (org, owner_key) = organization(store, "Acme").await;
    let customer = ExternalId::parse("cus_1").unwrap();
    let mut new = new_credential(org, Creator::Credential(owner_key), None, "k", all_scopes());
    new.metadata.external_id = Some(customer.clone());
    let key = store
        .insert_credential(&AuditContext::SYSTEM, new)
        .await
        .unwrap();
    assert_eq!(key.identity_limits, None);

    let limits = IdentityLimits {
        rate_limit: Some(RateLimit::new(5, 60).unwrap()),
        credits: Some(CreditSettings::new(10, None).unwrap()),
    };
    let (set, affected) = store
        .set_identity_limits(&AuditContext::SYSTEM, org, &customer, limits)
        .await
        .unwrap();
    assert_eq!(affected, [key.digest], "its credentials are forgotten");
    assert_eq!(set.rate_limit, limits.rate_limit);
    let read = store
        .find_credential_by_digest(&key.digest)
        .await
        .unwrap()
        .unwrap();
    let state = read.identity_limits.unwrap();
    assert_eq!(state.id, set.id);
    assert_eq!(state.rate_limit, limits.rate_limit);
    assert_eq!(state.credits.unwrap().settings.remaining, 10);

    // Its credits are leased like a key's.
    let lease = store
        .take_credits(CreditOwner::Identity(set.id), 4, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((lease.taken, lease.remaining), (4, 6));
    let shown = store
        .identity_limits(org, &customer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shown.credits.unwrap().settings.remaining, 6);
    // Setting them again keeps the id (and the rate limit's state) and starts the credits
    // over.
    let (again, _) = store
        .set_identity_limits(&AuditContext::SYSTEM, org, &customer, limits)
        .await
        .unwrap();
    assert_eq!(again.id, set.id);
    assert_eq!(again.credits.unwrap().settings.remaining, 10);

    // A key held by any limit cannot change them.
    let held = AuditContext {
        actor: Actor::Credential {
            id: key.id,
            hint: String::new(),
        },
        ..AuditContext::SYSTEM
    };
    let refused = store.delete_identity_limits(&held, org, &customer).await;
    assert!(
        matches!(refused, Err(StoreError::Invalid { .. })),
        "{refused:?}"
    );
    let other = ExternalId::parse("cus_2").unwrap();
    let refused = store.set_identity_limits(&held, org, &other, limits).await;
    assert!(
        matches!(refused, Err(StoreError::Invalid { .. })),
        "{refused:?}"
    );

    // Another organization has its own.
    let (other_org, _) = organization(store, "Other").await;
    assert!(
        store
            .identity_limits(other_org, &customer)
            .await
            .unwrap()
            .is_none()
    );

    let deleted = store
        .delete_identity_limits(&AuditContext::SYSTEM, org, &customer)
        .await
        .unwrap();
    assert_eq!(deleted, Some(vec![key.digest]));
    let read = store
        .find_credential_by_digest(&key.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.identity_limits, None);
    assert!(
        store
            .take_credits(CreditOwner::Identity(set.id), 1, 1)
            .await
            .unwrap()
            .is_none(),
        "no credits any more"
    );
    let again = store
        .delete_identity_limits(&AuditContext::SYSTEM, org, &customer)
        .await
        .unwrap();
    assert_eq!(again, None);
}

/// Settings and removals of one identity at once: each succeeds or finds nothing to remove,
/// never an error.
pub async fn concurrent_settings_and_removals_of_one_identity_never_fail(store: &dyn Store) {
    let (org, _) = organization(store, "Acme").await;
    let customer = ExternalId::parse("cus_1").unwrap();
    let limits = IdentityLimits {
        rate_limit: Some(RateLimit::new(5, 60).unwrap()),
        credits: Some(CreditSettings::new(10, None).unwrap()),
    };
    let set = || store.set_identity_limits(&AuditContext::SYSTEM, org, &customer, limits);
    let delete = || store.delete_identity_limits(&AuditContext::SYSTEM, org, &customer);
    for round in 0..10 {
        let (a, b, c, d) = tokio::join!(set(), delete(), set(), delete());
        for result in [a.map(drop), b.map(drop), c.map(drop), d.map(drop)] {
            assert!(result.is_ok(), "round {round}: {result:?}");
        }
    }
}

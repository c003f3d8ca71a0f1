use keyward_core::{Email, OrganizationId, Timestamp, UserId};
use keyward_store::{Creator, NewOrganization, NewOwner, Store, StoreError};

use crate::{all_scopes, name, new_credential};

pub async fn organization_names_are_unique_ignoring_case(store: &dyn Store) {
    crate::organization(store, "Acme").await;
    let id = OrganizationId::generate();
    let second_owner = UserId::generate();
    let result = store
        .create_organization(
            &keyward_store::AuditContext::SYSTEM,
            NewOrganization {
                id,
                name: name("ACME"),
                created_at: Timestamp::now(),
            },
            NewOwner::Create {
                id: second_owner,
                email: Email::parse("second@example.com").unwrap(),
                password_hash: "x".into(),
            },
            Some(new_credential(
                id,
                Creator::User(second_owner),
                None,
                "bootstrap",
                all_scopes(),
            )),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::Conflict("organization"))),
        "{result:?}"
    );
    // Nothing of the failed attempt remains.
    let email = Email::parse("second@example.com").unwrap();
    assert!(store.find_user_by_email(&email).await.unwrap().is_none());
}

pub async fn owners_are_new_or_existing_users(store: &dyn Store) {
    let first = OrganizationId::generate();
    let user = UserId::generate();
    let email = Email::parse("ada@example.com").unwrap();
    store
        .create_organization(
            &keyward_store::AuditContext::SYSTEM,
            NewOrganization {
                id: first,
                name: name("First"),
                created_at: Timestamp::now(),
            },
            NewOwner::Create {
                id: user,
                email: email.clone(),
                password_hash: "$argon2id$hash".into(),
            },
            Some(new_credential(
                first,
                Creator::User(user),
                None,
                "bootstrap",
                all_scopes(),
            )),
        )
        .await
        .unwrap();
    let found = store.find_user_by_email(&email).await.unwrap().unwrap();
    assert_eq!(found.id, user);
    assert_eq!(found.password_hash, "$argon2id$hash");

    let second = OrganizationId::generate();
    store
        .create_organization(
            &keyward_store::AuditContext::SYSTEM,
            NewOrganization {
                id: second,
                name: name("Second"),
                created_at: Timestamp::now(),
            },
            NewOwner::Existing(user),
            Some(new_credential(
                second,
                Creator::User(user),
                None,
                "bootstrap",
                all_scopes(),
            )),
        )
        .await
        .unwrap();

    let third = OrganizationId::generate();
    let stranger = UserId::generate();
    let missing = store
        .create_organization(
            &keyward_store::AuditContext::SYSTEM,
            NewOrganization {
                id: third,
                name: name("Third"),
                created_at: Timestamp::now(),
            },
            NewOwner::Existing(stranger),
            Some(new_credential(
                third,
                Creator::User(stranger),
                None,
                "bootstrap",
                all_scopes(),
            )),
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound("user"))),
        "{missing:?}"
    );
}

use keyward_core::{Email, ExternalId, OrganizationId, OrganizationRef, Timestamp, UserId};
use keyward_store::{
    AuditContext, AuditFilter, Creator, NewOrganization, NewOwner, OrganizationChanges,
    OrganizationFilter, Page, Store, StoreError,
};

use crate::{all_scopes, name, new_credential};

/// Names are not unique (two customers may both be "Acme"), except when the creation asks
/// (`bootstrap`'s guard), whatever the case.
pub async fn organization_names_are_unique_only_when_asked(store: &dyn Store) {
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
                external_id: None,
                policy: Default::default(),
                unique_name: true,
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
        matches!(result, Err(StoreError::Conflict("organization name"))),
        "{result:?}"
    );
    // Nothing of the failed attempt remains.
    let email = Email::parse("second@example.com").unwrap();
    assert!(store.find_user_by_email(&email).await.unwrap().is_none());
    // Without the guard, a second "Acme" is another organization.
    let other = store
        .provision_organization(&AuditContext::SYSTEM, new_organization("acme", None), None)
        .await
        .unwrap();
    assert_eq!(other.name.as_str(), "acme");
}

fn new_organization(org_name: &str, external_id: Option<&str>) -> NewOrganization {
    NewOrganization {
        id: OrganizationId::generate(),
        name: name(org_name),
        created_at: Timestamp::now(),
        external_id: external_id.map(|id| ExternalId::parse(id).unwrap()),
        policy: Default::default(),
        unique_name: false,
    }
}

fn external(id: &str) -> ExternalId {
    ExternalId::parse(id).unwrap()
}

/// The platform's organizations: one live organization per external id, found by it,
/// listed with filters, the installation never among them; a person provisioned without a
/// password.
pub async fn platform_organizations_are_found_by_external_id(store: &dyn Store) {
    let audit = AuditContext::SYSTEM;
    let email = Email::parse("ada@example.com").unwrap();
    let acme = store
        .provision_organization(
            &audit,
            new_organization("Acme", Some("cus_1")),
            Some(NewOwner::Provision {
                id: UserId::generate(),
                email: email.clone(),
                external_id: Some(external("user_1")),
                name: Some(name("Ada")),
            }),
        )
        .await
        .unwrap();
    let ada = store.find_user_by_email(&email).await.unwrap().unwrap();
    assert_eq!(ada.password_hash, None);
    assert_eq!(ada.external_id, Some(external("user_1")));
    let members = store.members(acme.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].role, keyward_core::Role::Owner);

    let taken = store
        .provision_organization(&audit, new_organization("Other", Some("cus_1")), None)
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict("organization external id"))),
        "{taken:?}"
    );
    let found = store
        .find_organization(&OrganizationRef::External(external("cus_1")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, acme.id);
    assert_eq!(found.external_id, Some(external("cus_1")));

    let acme_two = store
        .provision_organization(&audit, new_organization("ACME two", None), None)
        .await
        .unwrap();
    store
        .provision_organization(&audit, new_organization("Initech", Some("cus_3")), None)
        .await
        .unwrap();
    let list = |filter: OrganizationFilter| async move {
        store
            .list_organizations(&filter, Page::first(100))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|record| record.name.to_string())
            .collect::<Vec<_>>()
    };
    // Newest first, and never the installation.
    assert_eq!(
        list(OrganizationFilter::default()).await,
        ["Initech", "ACME two", "Acme"]
    );
    let prefix = OrganizationFilter {
        name_prefix: Some("acme".into()),
        ..Default::default()
    };
    assert_eq!(list(prefix).await, ["ACME two", "Acme"]);
    let by_id = OrganizationFilter {
        external_id: Some(external("cus_3")),
        ..Default::default()
    };
    assert_eq!(list(by_id).await, ["Initech"]);

    // Suspended ones, and active ones.
    let suspend = OrganizationChanges {
        suspended: Some(true),
        ..Default::default()
    };
    let change = store
        .update_organization(&audit, acme_two.id, suspend, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    assert!(change.record.suspended_at.is_some());
    let suspended = OrganizationFilter {
        suspended: Some(true),
        ..Default::default()
    };
    assert_eq!(list(suspended).await, ["ACME two"]);
    let active = OrganizationFilter {
        suspended: Some(false),
        ..Default::default()
    };
    assert_eq!(list(active).await, ["Initech", "Acme"]);
}

/// Suspension refuses the organization's credentials (read with each one) and any creation
/// in it; resumption accepts them again. Deletion revokes every credential in its own
/// transaction, frees the external id and leaves the audit log.
pub async fn suspension_and_deletion_reach_every_credential(store: &dyn Store) {
    let audit = AuditContext::SYSTEM;
    let (organization, _) = crate::organization(store, "Acme").await;
    let owner = store.members(organization).await.unwrap()[0].user_id;
    let key = new_credential(organization, Creator::User(owner), None, "ci", all_scopes());
    let digest = key.digest;
    store.insert_credential(&audit, key).await.unwrap();
    let changes = OrganizationChanges {
        external_id: Some(Some(external("cus_9"))),
        suspended: Some(true),
        ..Default::default()
    };
    let change = store
        .update_organization(&audit, organization, changes, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    // Both live keys: the bootstrap key and this one.
    assert_eq!(change.affected.len(), 2);
    assert!(change.affected.contains(&digest));
    let found = store
        .find_credential_by_digest(&digest)
        .await
        .unwrap()
        .unwrap();
    assert!(found.organization_suspended);
    let refused = store
        .insert_credential(
            &audit,
            new_credential(
                organization,
                Creator::User(owner),
                None,
                "more",
                all_scopes(),
            ),
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Suspended)), "{refused:?}");

    let resume = OrganizationChanges {
        suspended: Some(false),
        ..Default::default()
    };
    store
        .update_organization(&audit, organization, resume, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    let found = store
        .find_credential_by_digest(&digest)
        .await
        .unwrap()
        .unwrap();
    assert!(!found.organization_suspended);

    let deleted = store
        .delete_organization(&audit, organization, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.affected.len(), 2);
    let found = store
        .find_credential_by_digest(&digest)
        .await
        .unwrap()
        .unwrap();
    assert!(found.revoked_at.is_some());
    assert!(
        store
            .get_organization(organization)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.members(organization).await.unwrap().is_empty());
    // Gone: nothing more happens to it, and its external id is free again.
    assert!(
        store
            .delete_organization(&audit, organization, Timestamp::now())
            .await
            .unwrap()
            .is_none()
    );
    let refused = store
        .insert_credential(
            &audit,
            new_credential(
                organization,
                Creator::User(owner),
                None,
                "late",
                all_scopes(),
            ),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotFound("organization"))),
        "{refused:?}"
    );
    store
        .provision_organization(&audit, new_organization("Again", Some("cus_9")), None)
        .await
        .unwrap();
    // The log stays, and the installation's log has the lifecycle.
    let trail = store
        .list_audit_events(organization, &AuditFilter::default(), Page::first(100))
        .await
        .unwrap();
    let actions: Vec<_> = trail.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        &actions[..4],
        [
            "organization.deleted",
            "organization.resumed",
            "organization.suspended",
            "organization.updated"
        ]
    );
    let installation = store
        .list_installation_events(&AuditFilter::default(), Page::first(100))
        .await
        .unwrap();
    let actions: Vec<_> = installation
        .items
        .iter()
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "organization.created",
            "organization.deleted",
            "organization.resumed",
            "organization.suspended",
            "organization.updated",
            "organization.created"
        ]
    );
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
                external_id: None,
                policy: Default::default(),
                unique_name: false,
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
    assert_eq!(found.password_hash.as_deref(), Some("$argon2id$hash"));

    let second = OrganizationId::generate();
    store
        .create_organization(
            &keyward_store::AuditContext::SYSTEM,
            NewOrganization {
                id: second,
                name: name("Second"),
                created_at: Timestamp::now(),
                external_id: None,
                policy: Default::default(),
                unique_name: false,
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
                external_id: None,
                policy: Default::default(),
                unique_name: false,
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

pub async fn single_sign_on_finds_one_person_and_syncs_claimed_memberships(store: &dyn Store) {
    let audit = AuditContext::SYSTEM;
    let acme = store
        .provision_organization(&audit, new_organization("Acme", Some("acme")), None)
        .await
        .unwrap();
    let globex = store
        .provision_organization(&audit, new_organization("Globex", Some("globex")), None)
        .await
        .unwrap();
    let person = |email: &str, verified: bool| keyward_store::SsoPerson {
        subject: external("sub-1"),
        email: Email::parse(email).unwrap(),
        email_verified: verified,
        name: None,
    };
    let claim = |ids: &[&str], role: keyward_core::Role| {
        Some(
            ids.iter()
                .map(|id| (external(id), role))
                .collect::<Vec<_>>(),
        )
    };
    let now = Timestamp::now();
    // Four first sign-ins at once make one person.
    let (a, b, c, d) = tokio::join!(
        store.sign_in_with_provider(&audit, person("ada@example.com", true), None, now),
        store.sign_in_with_provider(&audit, person("ada@example.com", true), None, now),
        store.sign_in_with_provider(&audit, person("ada@example.com", true), None, now),
        store.sign_in_with_provider(&audit, person("ada@example.com", true), None, now),
    );
    let ids: std::collections::HashSet<UserId> = [a, b, c, d]
        .into_iter()
        .map(|signed| signed.unwrap().unwrap().user_id)
        .collect();
    assert_eq!(ids.len(), 1, "one person");
    let ada = *ids.iter().next().unwrap();

    let role = keyward_core::Role::Admin;
    let signed = store
        .sign_in_with_provider(
            &audit,
            person("ada@example.com", true),
            claim(&["globex", "acme", "nope"], role),
            now,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(signed.claimed, Some(vec![globex.id, acme.id]));
    assert_eq!(store.memberships_of(ada).await.unwrap().len(), 2);
    // Globex is no longer claimed, and Acme now says member.
    store
        .sign_in_with_provider(
            &audit,
            person("ada@example.com", true),
            claim(&["acme"], keyward_core::Role::Member),
            now,
        )
        .await
        .unwrap()
        .unwrap();
    let memberships = store.memberships_of(ada).await.unwrap();
    assert_eq!(memberships.len(), 1);
    assert_eq!(
        (memberships[0].organization_id, memberships[0].role),
        (acme.id, keyward_core::Role::Member)
    );
    // A membership made in Keyward is left alone by the claim.
    store
        .add_member(&audit, globex.id, ada, keyward_core::Role::Member, now)
        .await
        .unwrap();
    store
        .sign_in_with_provider(
            &audit,
            person("ada@example.com", true),
            claim(&[], role),
            now,
        )
        .await
        .unwrap()
        .unwrap();
    let memberships = store.memberships_of(ada).await.unwrap();
    assert_eq!(memberships.len(), 1);
    assert_eq!(memberships[0].organization_id, globex.id);

    // An unverified email never links an account; another subject with a taken email is
    // refused.
    let other = |sub: &str, verified: bool| keyward_store::SsoPerson {
        subject: external(sub),
        email: Email::parse("ada@example.com").unwrap(),
        email_verified: verified,
        name: None,
    };
    let refused = store
        .sign_in_with_provider(&audit, other("sub-2", true), None, now)
        .await
        .unwrap();
    assert_eq!(refused, Err(keyward_store::SsoRefusal::EmailTaken));
}

//! The audit log: every change records one event in its own transaction.

use keyward_core::{Email, OrganizationId, Role, Timestamp, UserId};
use keyward_store::{
    Actor, AuditContext, AuditEventRecord, AuditFilter, Creator, CredentialChanges,
    MembershipChange, NewOrganization, NewOwner, Page, ProjectChanges, Store, StoreError,
};
use serde_json::{Value, json};

use crate::resources::{instance, project};
use crate::{name, new_credential, organization, scope_names};

async fn events(store: &dyn Store, organization: OrganizationId) -> Vec<AuditEventRecord> {
    store
        .list_audit_events(organization, &AuditFilter::default(), Page::first(100))
        .await
        .unwrap()
        .items
}

fn changes(event: &AuditEventRecord) -> Value {
    serde_json::from_str(&event.changes).unwrap()
}

pub async fn every_change_records_one_event_with_its_actor(store: &dyn Store) {
    let (org, bootstrap) = organization(store, "Acme").await;
    let created = events(store, org).await;
    assert_eq!(
        created
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        ["api_key.created", "organization.created"],
        "newest first"
    );
    let person = AuditContext {
        actor: Actor::Credential {
            id: bootstrap,
            hint: "kwk_…abcd".into(),
        },
        client_ip: Some("192.0.2.7".into()),
        user_agent: Some("curl/8.5.0".into()),
        request_id: Some("req_1".into()),
    };

    let web = store
        .insert_project(&person, project(org, "Web"))
        .await
        .unwrap();
    let key = store
        .insert_credential(
            &person,
            new_credential(
                org,
                Creator::Credential(bootstrap),
                None,
                "Reader",
                scope_names(&["instances:read"]),
            ),
        )
        .await
        .unwrap();
    store
        .update_credential(
            &person,
            org,
            key.id,
            CredentialChanges {
                name: Some(name("Renamed")),
                rate_limit: None,
                allowed_cidrs: None,
                ..CredentialChanges::default()
            },
        )
        .await
        .unwrap();
    // Nothing changes: no event.
    store
        .update_credential(&person, org, key.id, CredentialChanges::default())
        .await
        .unwrap();
    let now = Timestamp::now();
    store
        .revoke_credential(&person, org, key.id, now)
        .await
        .unwrap();
    store
        .revoke_credential(&person, org, key.id, now)
        .await
        .unwrap();
    let database = store
        .insert_instance(&person, instance(org, web.id, "db-1"))
        .await
        .unwrap();
    store
        .delete_instance(&person, org, database.id)
        .await
        .unwrap();
    store
        .update_project(
            &person,
            org,
            web.id,
            ProjectChanges {
                name: None,
                description: Some("Our site".into()),
            },
            now,
        )
        .await
        .unwrap();
    store
        .delete_project(&person, org, web.id, now)
        .await
        .unwrap();
    // A change that fails leaves no event.
    let clash = store
        .insert_project(&person, project(org, "Web"))
        .await
        .unwrap();
    assert!(
        store
            .insert_project(&person, project(org, "web"))
            .await
            .is_err()
    );
    store
        .delete_project(&person, org, clash.id, now)
        .await
        .unwrap();

    let log = events(store, org).await;
    let actions: Vec<&str> = log
        .iter()
        .rev()
        .skip(2)
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "project.created",
            "api_key.created",
            "api_key.updated",
            "api_key.revoked",
            "instance.created",
            "instance.deleted",
            "project.updated",
            "project.deleted",
            "project.created",
            "project.deleted",
        ]
    );
    let renamed = &log[log.len() - 5];
    assert_eq!(renamed.action, "api_key.updated");
    assert_eq!(renamed.target_type, "api_key");
    assert_eq!(renamed.target_id, key.id.to_string());
    assert_eq!(renamed.actor, person.actor);
    assert_eq!(renamed.client_ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(renamed.user_agent.as_deref(), Some("curl/8.5.0"));
    assert_eq!(renamed.request_id.as_deref(), Some("req_1"));
    assert_eq!(
        changes(renamed),
        json!({ "name": { "before": "Reader", "after": "Renamed" } })
    );
    let created = &log[log.len() - 4];
    let fields = changes(created);
    assert_eq!(fields["scopes"]["after"], json!(["instances:read"]));
    assert_eq!(fields["hint"]["after"], json!(key.hint));
    // Never the secret or its digest.
    assert!(!created.changes.contains("sha256") && !created.changes.contains("digest"));
    let project_update = &log[3];
    assert_eq!(
        changes(project_update),
        json!({ "description": { "before": "about it", "after": "Our site" } })
    );

    // Filters, and another organization's events out of reach.
    let by_target = store
        .list_audit_events(
            org,
            &AuditFilter {
                target: Some(key.id.to_string()),
                ..AuditFilter::default()
            },
            Page::first(100),
        )
        .await
        .unwrap();
    assert_eq!(by_target.items.len(), 3);
    let by_action = AuditFilter {
        action: Some("project.deleted".into()),
        ..AuditFilter::default()
    };
    let deleted = store
        .list_audit_events(org, &by_action, Page::first(1))
        .await
        .unwrap();
    assert_eq!(deleted.items.len(), 1);
    assert!(deleted.has_more, "a second page");
    let until_then = AuditFilter {
        until: Some(Timestamp::from_unix_seconds(1)),
        ..AuditFilter::default()
    };
    assert!(
        store
            .list_audit_events(org, &until_then, Page::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let (other, _) = organization(store, "Globex").await;
    assert_eq!(events(store, other).await.len(), 2);
}

pub async fn members_and_sessions_are_recorded(store: &dyn Store) {
    let (org, _) = organization(store, "Acme").await;
    let person = UserId::generate();
    // The person exists: they own an organization of their own.
    crate::organization_owned_by(store, "Bob's", person).await;
    store
        .add_member(
            &AuditContext::SYSTEM,
            org,
            person,
            Role::Member,
            Timestamp::now(),
        )
        .await
        .unwrap();
    let changed = store
        .change_member_role(
            &AuditContext::SYSTEM,
            org,
            person,
            Role::Member,
            Role::Admin,
        )
        .await
        .unwrap();
    assert_eq!(changed, MembershipChange::Done);
    let stale = store
        .change_member_role(
            &AuditContext::SYSTEM,
            org,
            person,
            Role::Member,
            Role::Owner,
        )
        .await
        .unwrap();
    assert_eq!(stale, MembershipChange::Stale);
    store
        .remove_member(&AuditContext::SYSTEM, org, person, Role::Admin)
        .await
        .unwrap();
    let log = events(store, org).await;
    let actions: Vec<&str> = log.iter().take(3).map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["member.removed", "member.role_changed", "member.added"]
    );
    assert_eq!(
        changes(&log[1]),
        json!({ "role": { "before": "member", "after": "admin" } })
    );
    assert_eq!(log[0].target_id, person.to_string());
    assert_eq!(log[0].actor, Actor::System);
}

/// A change whose event is written first and whose later part fails: neither is kept.
pub async fn a_change_that_fails_after_its_event_leaves_neither(store: &dyn Store) {
    let (org, bootstrap) = organization(store, "Acme").await;
    let taken = store.get_credential(org, bootstrap).await.unwrap().unwrap();
    // The organization (and its event) is written before the first key, whose digest is
    // taken: the whole transaction goes.
    let id = OrganizationId::generate();
    let mut key = new_credential(
        id,
        Creator::User(UserId::generate()),
        None,
        "first",
        scope_names(&["instances:read"]),
    );
    key.digest = taken.digest;
    let refused = store
        .create_organization(
            &AuditContext::SYSTEM,
            NewOrganization {
                id,
                name: name("Initech"),
                created_at: Timestamp::now(),
                external_id: None,
                policy: Default::default(),
                unique_name: false,
            },
            NewOwner::Create {
                id: UserId::generate(),
                email: Email::parse("peter@initech.example").unwrap(),
                password_hash: "$argon2id$unused".into(),
            },
            Some(key),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert!(events(store, id).await.is_empty());
    assert!(
        store
            .find_user_by_email(&Email::parse("peter@initech.example").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

/// A change whose event cannot be written is not kept either (the caller has made every
/// insert into `audit_events` fail).
pub async fn a_change_whose_event_fails_is_not_kept(store: &dyn Store, org: OrganizationId) {
    let refused = store
        .insert_project(&AuditContext::SYSTEM, project(org, "Web"))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let projects = store
        .list_projects(org, None, Page::first(10))
        .await
        .unwrap();
    assert!(projects.items.is_empty(), "{:?}", projects.items);
}

pub async fn old_events_are_pruned_in_batches(store: &dyn Store) {
    let (org, _) = organization(store, "Acme").await;
    assert_eq!(events(store, org).await.len(), 2);
    let past = Timestamp::from_unix_seconds(1_000_000_000);
    assert_eq!(store.prune_audit_events(past, 100).await.unwrap(), 0);
    let later = Timestamp::now().plus_seconds(10);
    assert_eq!(store.prune_audit_events(later, 1).await.unwrap(), 1);
    assert_eq!(events(store, org).await.len(), 1);
    assert_eq!(store.prune_audit_events(later, 100).await.unwrap(), 1);
    assert!(events(store, org).await.is_empty());
}

use keyward_core::{
    CredentialKind, CredentialStatus, ExternalId, KeyDigest, Meta, Metadata, OrganizationId,
    ProjectId, RateLimit, Timestamp,
};
use keyward_store::{
    AuditFilter, Creator, CredentialChanges, CredentialFilter, NewProject, Page, Store, StoreError,
    UsageUpdate,
};
use serde_json::json;

use crate::{name, new_credential, organization, scope_names};

pub async fn credentials_are_found_by_digest(store: &dyn Store) {
    let (org, bootstrap) = organization(store, "Acme").await;
    let scopes = scope_names(&["instances:read", "projects:read"]);
    let mut new = new_credential(
        org,
        Creator::Credential(bootstrap),
        None,
        "Reader",
        scopes.clone(),
    );
    new.expires_at = Some(Timestamp::now().plus_seconds(3600));
    let digest = new.digest;
    let inserted = store
        .insert_credential(&keyward_store::AuditContext::SYSTEM, new.clone())
        .await
        .unwrap();
    assert_eq!(inserted.id, new.id);

    let found = store
        .find_credential_by_digest(&digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, inserted);
    assert_eq!(found.scopes, scopes);
    assert_eq!(found.expires_at, new.expires_at);
    assert_eq!(found.status(Timestamp::now()), CredentialStatus::Active);
    assert_eq!(found.kind(), CredentialKind::ApiKey);
    assert!(
        store
            .find_credential_by_digest(&KeyDigest::of("kwk_unknown"))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn lists_page_newest_first_by_kind_and_project(store: &dyn Store) {
    let (org, bootstrap) = organization(store, "Acme").await;
    let project = store
        .insert_project(
            &keyward_store::AuditContext::SYSTEM,
            NewProject {
                id: ProjectId::generate(),
                organization_id: org,
                name: name("Web"),
                description: String::new(),
                created_at: Timestamp::now(),
            },
        )
        .await
        .unwrap();
    let scopes = scope_names(&["instances:read"]);
    let mut keys = vec![bootstrap];
    for n in 0..4 {
        let key = store
            .insert_credential(
                &keyward_store::AuditContext::SYSTEM,
                new_credential(
                    org,
                    Creator::Credential(bootstrap),
                    None,
                    &format!("key {n}"),
                    scopes.clone(),
                ),
            )
            .await
            .unwrap();
        keys.push(key.id);
    }
    let token = store
        .insert_credential(
            &keyward_store::AuditContext::SYSTEM,
            new_credential(
                org,
                Creator::Credential(bootstrap),
                Some(project.id),
                "token",
                scopes.clone(),
            ),
        )
        .await
        .unwrap();

    let api_keys = CredentialFilter {
        kind: CredentialKind::ApiKey,
        project: None,
        external_id: None,
    };
    let first = store
        .list_credentials(org, &api_keys, Page::first(3))
        .await
        .unwrap();
    assert!(first.has_more);
    let ids: Vec<_> = first.items.iter().map(|c| c.id).collect();
    assert_eq!(ids, [keys[4], keys[3], keys[2]]);
    let rest = store
        .list_credentials(
            org,
            &api_keys,
            Page {
                limit: 3,
                before: Some(keys[2].as_uuid()),
            },
        )
        .await
        .unwrap();
    assert!(!rest.has_more);
    let ids: Vec<_> = rest.items.iter().map(|c| c.id).collect();
    assert_eq!(ids, [keys[1], keys[0]]);

    let tokens = store
        .list_credentials(
            org,
            &CredentialFilter {
                kind: CredentialKind::ProjectToken,
                project: Some(project.id),
                external_id: None,
            },
            Page::first(10),
        )
        .await
        .unwrap();
    assert_eq!(tokens.items.len(), 1);
    assert_eq!(tokens.items[0].id, token.id);
    assert_eq!(tokens.items[0].project_id, Some(project.id));

    let (other, _) = organization(store, "Globex").await;
    let theirs = store
        .list_credentials(other, &api_keys, Page::first(100))
        .await
        .unwrap();
    assert_eq!(theirs.items.len(), 1, "only their own bootstrap key");
}

pub async fn revocation_is_permanent_and_stays_in_its_organization(store: &dyn Store) {
    let (org, key) = organization(store, "Acme").await;
    let (other, _) = organization(store, "Globex").await;
    let first_time = Timestamp::from_unix_seconds(1_800_000_000);

    assert!(
        store
            .revoke_credential(&keyward_store::AuditContext::SYSTEM, other, key, first_time)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_credential(org, key)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );

    let revoked = store
        .revoke_credential(&keyward_store::AuditContext::SYSTEM, org, key, first_time)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(first_time));
    let again = store
        .revoke_credential(
            &keyward_store::AuditContext::SYSTEM,
            org,
            key,
            first_time.plus_seconds(60),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(first_time),
        "the first revocation stands"
    );
    assert_eq!(again.status(Timestamp::now()), CredentialStatus::Revoked);

    let unknown = keyward_core::CredentialId::generate(CredentialKind::ApiKey);
    assert!(
        store
            .revoke_credential(
                &keyward_store::AuditContext::SYSTEM,
                org,
                unknown,
                first_time
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_credential(OrganizationId::generate(), key)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn scope_usage_counts_usable_credentials_by_scope_list(store: &dyn Store) {
    let (org, bootstrap) = organization(store, "Acme").await;
    let now = Timestamp::now();
    let platform = scope_names(&["instances:read", "databases:read"]);
    let mut ids = Vec::new();
    for (index, expires_at) in [None, None, Some(now.plus_seconds(-1)), None]
        .into_iter()
        .enumerate()
    {
        let mut new = new_credential(
            org,
            Creator::Credential(bootstrap),
            None,
            &format!("Key {index}"),
            platform.clone(),
        );
        new.expires_at = expires_at;
        ids.push(
            store
                .insert_credential(&keyward_store::AuditContext::SYSTEM, new)
                .await
                .unwrap()
                .id,
        );
    }
    store
        .revoke_credential(&keyward_store::AuditContext::SYSTEM, org, ids[3], now)
        .await
        .unwrap();

    let mut usage = store.scope_usage(now).await.unwrap();
    usage.sort_by_key(|(_, holders)| *holders);
    // Two usable keys hold the platform list (one expired, one revoked); the bootstrap key
    // holds every built-in scope.
    assert_eq!(usage, [(crate::all_scopes(), 1), (platform, 2)]);
}

pub async fn last_use_never_moves_backwards(store: &dyn Store) {
    let (org, key) = organization(store, "Acme").await;
    let later = Timestamp::from_unix_seconds(1_800_000_100);
    let earlier = Timestamp::from_unix_seconds(1_800_000_000);
    let ip = Some("192.0.2.7".parse().unwrap());
    let update = |at| UsageUpdate {
        credential: key,
        at,
        ip,
    };
    assert_eq!(store.record_usage(&[update(later)]).await.unwrap(), 1);
    assert_eq!(store.record_usage(&[update(earlier)]).await.unwrap(), 0);
    assert_eq!(store.record_usage(&[]).await.unwrap(), 0);
    let stored = store.get_credential(org, key).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, Some(later));
    // The address keeps the time of its latest use, not the earlier one written after it.
    assert_eq!(
        store.credential_addresses(org, key).await.unwrap(),
        [("192.0.2.7".to_owned(), later)]
    );
}

pub async fn the_last_five_addresses_are_kept(store: &dyn Store) {
    let (org, key) = organization(store, "Acme").await;
    let batch: Vec<UsageUpdate> = (0..7)
        .map(|n| UsageUpdate {
            credential: key,
            at: Timestamp::from_unix_seconds(1_800_000_000 + n),
            ip: Some(format!("192.0.2.{n}").parse().unwrap()),
        })
        .collect();
    store.record_usage(&batch).await.unwrap();
    let kept = store.credential_addresses(org, key).await.unwrap();
    let ips: Vec<&str> = kept.iter().map(|(ip, _)| ip.as_str()).collect();
    assert_eq!(
        ips,
        [
            "192.0.2.6",
            "192.0.2.5",
            "192.0.2.4",
            "192.0.2.3",
            "192.0.2.2"
        ],
        "the five most recent, newest first"
    );
    assert_eq!(kept[0].1, Timestamp::from_unix_seconds(1_800_000_006));
    // The last use's address is the newest one's.
    let stored = store.get_credential(org, key).await.unwrap().unwrap();
    assert_eq!(
        stored.last_used_at,
        Some(Timestamp::from_unix_seconds(1_800_000_006))
    );
    // Another organization sees none of them.
    let (other, _) = organization(store, "Globex").await;
    assert!(
        store
            .credential_addresses(other, key)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn credentials_can_be_renamed_and_rate_limited(store: &dyn Store) {
    let (org, key) = organization(store, "Acme").await;
    let (other, _) = organization(store, "Globex").await;
    let limit = RateLimit::new(100, 60).unwrap();
    let networks = keyward_core::Networks::parse(&["2001:db8::/32", "192.0.2.0/24"]).unwrap();
    let changed = store
        .update_credential(
            &keyward_store::AuditContext::SYSTEM,
            org,
            key,
            CredentialChanges {
                name: Some(name("Renamed")),
                rate_limit: Some(Some(limit)),
                allowed_cidrs: Some(Some(networks.clone())),
                ..CredentialChanges::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.name.as_str(), "Renamed");
    assert_eq!(changed.rate_limit, Some(limit));
    let found = store
        .find_credential_by_digest(&changed.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.rate_limit, Some(limit));
    assert_eq!(found.allowed_cidrs.as_ref(), Some(&networks));
    assert_eq!(changed.allowed_cidrs.as_ref(), Some(&networks));

    // Leaving a field out keeps it; Some(None) removes the limit.
    let kept = store
        .update_credential(
            &keyward_store::AuditContext::SYSTEM,
            org,
            key,
            CredentialChanges::default(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kept.name.as_str(), kept.rate_limit),
        ("Renamed", Some(limit))
    );
    assert_eq!(kept.allowed_cidrs, Some(networks));
    let removed = store
        .update_credential(
            &keyward_store::AuditContext::SYSTEM,
            org,
            key,
            CredentialChanges {
                name: None,
                rate_limit: Some(None),
                allowed_cidrs: Some(None),
                ..CredentialChanges::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed.rate_limit, None);
    assert_eq!(removed.allowed_cidrs, None);
    assert!(
        store
            .update_credential(
                &keyward_store::AuditContext::SYSTEM,
                other,
                key,
                CredentialChanges::default()
            )
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn a_rotation_links_two_credentials_and_ends_once(store: &dyn Store) {
    let (org, bootstrap) = organization(store, "Acme").await;
    let old = store
        .insert_credential(
            &keyward_store::AuditContext::SYSTEM,
            new_credential(
                org,
                Creator::Credential(bootstrap),
                None,
                "CI",
                scope_names(&["instances:read"]),
            ),
        )
        .await
        .unwrap();
    let now = Timestamp::now();
    let ends_at = now.plus_seconds(60);
    let mut successor = new_credential(
        org,
        Creator::Credential(bootstrap),
        None,
        "CI",
        scope_names(&["instances:read"]),
    );
    successor.rotated_from = Some(old.id);
    let (rotated, replacement) = store
        .rotate_credential(
            &keyward_store::AuditContext::SYSTEM,
            org,
            old.id,
            successor,
            ends_at,
        )
        .await
        .unwrap()
        .unwrap();
    let rotation = rotated.rotation.unwrap();
    assert_eq!(rotation.ends_at, ends_at);
    assert_eq!(rotation.replaced_by, replacement.id);
    assert_eq!(replacement.rotated_from, Some(old.id));
    assert_eq!(rotated.revoked_at, None);
    assert_eq!(rotated.status(now), CredentialStatus::Active);
    assert_eq!(rotated.status(ends_at), CredentialStatus::Revoked);
    let found = store
        .find_credential_by_digest(&old.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.rotation, Some(rotation));

    // Once only; not at all once revoked; not in another organization.
    let again = new_credential(
        org,
        Creator::Credential(bootstrap),
        None,
        "CI",
        scope_names(&["instances:read"]),
    );
    assert!(matches!(
        store
            .rotate_credential(
                &keyward_store::AuditContext::SYSTEM,
                org,
                old.id,
                again.clone(),
                ends_at
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    let (other, _) = organization(store, "Globex").await;
    assert!(
        store
            .rotate_credential(
                &keyward_store::AuditContext::SYSTEM,
                other,
                replacement.id,
                again,
                ends_at
            )
            .await
            .unwrap()
            .is_none()
    );
    // Revoking during the overlap still works, and is what counts.
    let revoked = store
        .revoke_credential(&keyward_store::AuditContext::SYSTEM, org, old.id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(now));
    assert_eq!(
        revoked.status(now.plus_seconds(-3600)),
        keyward_core::CredentialStatus::Revoked,
        "revoked whatever the time, the overlap's end included"
    );
}

/// Rotates the organization's first key, for the schema tests.
pub async fn rotate_first_key(store: &dyn Store) -> keyward_core::CredentialId {
    let (org, key) = organization(store, "Rotating").await;
    let mut successor = new_credential(
        org,
        Creator::Credential(key),
        None,
        "next",
        crate::all_scopes(),
    );
    successor.rotated_from = Some(key);
    store
        .rotate_credential(
            &keyward_store::AuditContext::SYSTEM,
            org,
            key,
            successor,
            Timestamp::now().plus_seconds(60),
        )
        .await
        .unwrap()
        .unwrap();
    key
}

pub async fn new_credentials_meet_the_organizations_policy(store: &dyn Store) {
    let (org, bootstrap) = organization(store, "Acme").await;
    let changes = keyward_store::PolicyChanges {
        max_lifetime_days: Some(Some(30)),
        require_expiry: None,
        leak_action: None,
    };
    let set = store
        .set_organization_policy(&keyward_store::AuditContext::SYSTEM, org, changes)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(set.policy.max_lifetime_days, Some(30));
    assert!(!set.policy.require_expiry);
    let fetched = store.get_organization(org).await.unwrap().unwrap();
    assert_eq!(fetched.policy, set.policy);

    let key = |expires_at: Option<Timestamp>| {
        let mut new = new_credential(
            org,
            Creator::Credential(bootstrap),
            None,
            "k",
            scope_names(&["instances:read"]),
        );
        new.expires_at = expires_at;
        new
    };
    let now = Timestamp::now();
    for refused in [None, Some(now.plus_seconds(31 * 86_400))] {
        assert!(matches!(
            store
                .insert_credential(&keyward_store::AuditContext::SYSTEM, key(refused))
                .await,
            Err(StoreError::Policy(policy)) if policy.max_lifetime_days == Some(30)
        ));
    }
    store
        .insert_credential(
            &keyward_store::AuditContext::SYSTEM,
            key(Some(now.plus_seconds(29 * 86_400))),
        )
        .await
        .unwrap();
    // Another organization is not bound by it.
    let (other, other_key) = organization(store, "Globex").await;
    let mut theirs = new_credential(
        other,
        Creator::Credential(other_key),
        None,
        "k",
        scope_names(&["instances:read"]),
    );
    theirs.expires_at = None;
    store
        .insert_credential(&keyward_store::AuditContext::SYSTEM, theirs)
        .await
        .unwrap();
}

pub async fn an_exposure_report_marks_and_revokes_once(store: &dyn Store) {
    let (org, owner) = organization(store, "Acme").await;
    let audit = &keyward_store::AuditContext::SYSTEM;
    let new = |name: &str| {
        new_credential(
            org,
            Creator::Credential(owner),
            None,
            name,
            scope_names(&["instances:read"]),
        )
    };
    let leaked = store.insert_credential(audit, new("leaked")).await.unwrap();
    let flagged = store
        .insert_credential(audit, new("flagged"))
        .await
        .unwrap();
    let now = Timestamp::now();
    let unknown = keyward_core::KeyDigest::of("nothing");
    let source = "https://github.com/acme/app/blob/main/.env";
    let changed = store
        .report_exposed(
            audit,
            &[leaked.digest, unknown],
            source,
            Some(true),
            now,
            false,
        )
        .await
        .unwrap();
    assert_eq!(changed.len(), 1);
    let exposure = changed[0].exposure.clone().unwrap();
    assert_eq!((exposure.source.as_str(), exposure.at), (source, now));
    assert_eq!(changed[0].revoked_at, Some(now));
    // Sent again: nothing more.
    let again = store
        .report_exposed(audit, &[leaked.digest], source, Some(true), now, false)
        .await
        .unwrap();
    assert!(again.is_empty());
    // Flagged only: marked, still working.
    let marked = store
        .report_exposed(
            audit,
            &[flagged.digest],
            "a paste site",
            Some(false),
            now,
            false,
        )
        .await
        .unwrap();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0].revoked_at, None);
    let found = store
        .find_credential_by_digest(&flagged.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.exposure.unwrap().source, "a paste site");
    // Flagged again: nothing more. A report that revokes revokes it, the first report's
    // source and time kept.
    let again = store
        .report_exposed(
            audit,
            &[flagged.digest],
            "a paste site",
            Some(false),
            now,
            false,
        )
        .await
        .unwrap();
    assert!(again.is_empty());
    let later = now.plus_seconds(60);
    let revoked = store
        .report_exposed(
            audit,
            &[flagged.digest],
            "public report",
            Some(true),
            later,
            false,
        )
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].revoked_at, Some(later));
    let exposure = revoked[0].exposure.clone().unwrap();
    assert_eq!(
        (exposure.source.as_str(), exposure.at),
        ("a paste site", now)
    );
    let events = store
        .list_audit_events(
            org,
            &keyward_store::AuditFilter {
                action: Some("api_key.leaked".into()),
                ..Default::default()
            },
            keyward_store::Page::first(10),
        )
        .await
        .unwrap();
    assert_eq!(
        events.items.len(),
        3,
        "one event per report that changed something"
    );
    let revoking = &events.items[0];
    assert_eq!(revoking.target_id, flagged.id.to_string());
    let changes: serde_json::Value = serde_json::from_str(&revoking.changes).unwrap();
    assert!(
        changes.get("revoked_at").is_some() && changes.get("exposed_at").is_none(),
        "{changes}"
    );

    // By the organization's policy: revoked by default, flagged when it says so.
    let by_default = store
        .insert_credential(audit, new("default"))
        .await
        .unwrap();
    let changed = store
        .report_exposed(audit, &[by_default.digest], "https://x", None, now, false)
        .await
        .unwrap();
    assert!(changed[0].revoked_at.is_some());
    let flag = keyward_store::PolicyChanges {
        leak_action: Some(keyward_store::LeakAction::Flag),
        ..Default::default()
    };
    let policy = store
        .set_organization_policy(audit, org, flag)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(policy.policy.leak_action, keyward_store::LeakAction::Flag);
    let by_policy = store.insert_credential(audit, new("policy")).await.unwrap();
    let changed = store
        .report_exposed(audit, &[by_policy.digest], "https://x", None, now, false)
        .await
        .unwrap();
    assert_eq!(changed.len(), 1);
    assert!(changed[0].revoked_at.is_none(), "flagged only");
}

pub async fn external_ids_and_meta_are_kept_filtered_and_audited(store: &dyn Store) {
    let (org, bootstrap) = organization(store, "Acme").await;
    let (other, other_key) = organization(store, "Globex").await;
    let external = ExternalId::parse("user_42").unwrap();
    let meta = Meta::from_value(&json!({"plan": "pro", "region": "eu"})).unwrap();
    let mut tagged = Vec::new();
    for credential_name in ["First", "Second"] {
        let mut new = new_credential(
            org,
            Creator::Credential(bootstrap),
            None,
            credential_name,
            scope_names(&["instances:read"]),
        );
        new.metadata = Metadata {
            external_id: Some(external.clone()),
            meta: Some(meta.clone()),
        };
        let inserted = store
            .insert_credential(&keyward_store::AuditContext::SYSTEM, new)
            .await
            .unwrap();
        assert_eq!(inserted.metadata.external_id.as_ref(), Some(&external));
        let found = store
            .find_credential_by_digest(&inserted.digest)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.metadata.meta.as_ref(), Some(&meta));
        assert_eq!(found, inserted);
        tagged.push(inserted.id);
    }
    // Another organization's credential with the same external id is not in the list.
    let mut elsewhere = new_credential(
        other,
        Creator::Credential(other_key),
        None,
        "Theirs",
        scope_names(&["instances:read"]),
    );
    elsewhere.metadata.external_id = Some(external.clone());
    store
        .insert_credential(&keyward_store::AuditContext::SYSTEM, elsewhere)
        .await
        .unwrap();

    let filter = |external_id: &str| CredentialFilter {
        kind: CredentialKind::ApiKey,
        project: None,
        external_id: Some(ExternalId::parse(external_id).unwrap()),
    };
    let listed = store
        .list_credentials(org, &filter("user_42"), Page::first(10))
        .await
        .unwrap();
    let ids: Vec<_> = listed.items.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [tagged[1], tagged[0]],
        "newest first, the bootstrap key left out"
    );
    assert!(
        store
            .list_credentials(org, &filter("user_43"), Page::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Changed, then removed; each change is an audit event with before and after.
    let other_meta = Meta::from_value(&json!({"plan": "free"})).unwrap();
    let changed = store
        .update_credential(
            &keyward_store::AuditContext::SYSTEM,
            org,
            tagged[0],
            CredentialChanges {
                external_id: Some(Some(ExternalId::parse("user_43").unwrap())),
                meta: Some(Some(other_meta.clone())),
                ..CredentialChanges::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.metadata.external_id.unwrap().as_str(), "user_43");
    assert_eq!(changed.metadata.meta, Some(other_meta));
    let event = &store
        .list_audit_events(
            org,
            &AuditFilter {
                action: Some("api_key.updated".into()),
                ..AuditFilter::default()
            },
            Page::first(1),
        )
        .await
        .unwrap()
        .items[0];
    let changes: serde_json::Value = serde_json::from_str(&event.changes).unwrap();
    assert_eq!(
        changes["external_id"],
        json!({"before": "user_42", "after": "user_43"})
    );
    assert_eq!(
        changes["meta"],
        json!({"before": {"plan": "pro", "region": "eu"}, "after": {"plan": "free"}})
    );
    let removed = store
        .update_credential(
            &keyward_store::AuditContext::SYSTEM,
            org,
            tagged[0],
            CredentialChanges {
                external_id: Some(None),
                meta: Some(None),
                ..CredentialChanges::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(removed.metadata.is_empty());
    let kept = store.get_credential(org, tagged[1]).await.unwrap().unwrap();
    assert_eq!(kept.metadata.meta, Some(meta));
}

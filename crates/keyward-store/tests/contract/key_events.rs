//! The key-event log: numbered in commit order, per organization, pruned behind a horizon.

use std::sync::atomic::{AtomicBool, Ordering};

use keyward_core::{CredentialId, OrganizationId, Timestamp};
use keyward_store::{AuditContext, Creator, KeyChangeKind, Store};

use crate::{new_credential, organization, scope_names};

async fn keys(
    store: &dyn Store,
    org: OrganizationId,
    by: CredentialId,
    n: usize,
) -> Vec<CredentialId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let new = new_credential(
            org,
            Creator::Credential(by),
            None,
            &format!("key {i}"),
            scope_names(&["projects:read"]),
        );
        ids.push(new.id);
        store
            .insert_credential(&AuditContext::SYSTEM, new)
            .await
            .unwrap();
    }
    ids
}

async fn revoke(store: &dyn Store, org: OrganizationId, id: CredentialId) {
    store
        .revoke_credential(&AuditContext::SYSTEM, org, id, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
}

/// Changes commit concurrently while a reader follows the log from the last id it saw, as a
/// stream does: it must see every change, each once, in increasing order. (On PostgreSQL,
/// ids taken before the commit would let a later id commit first and a reader skip the
/// earlier one for good.)
pub async fn key_events_are_numbered_in_commit_order_and_a_reader_misses_none(store: &dyn Store) {
    let (org, bootstrap) = organization(store, "Acme").await;
    let (other, other_key) = organization(store, "Other").await;
    let ids = keys(store, org, bootstrap, 48).await;
    let others = keys(store, other, other_key, 4).await;
    let start = store.key_events(org, 0, 0).await.unwrap().latest;

    let done = AtomicBool::new(false);
    let writer = |lane: usize| {
        let ids = &ids;
        async move {
            for id in ids.iter().skip(lane).step_by(6) {
                revoke(store, org, *id).await;
            }
        }
    };
    let reader = async {
        let mut seen = Vec::new();
        let mut last = start;
        loop {
            let finished = done.load(Ordering::SeqCst);
            let page = store.key_events(org, last, 7).await.unwrap();
            for event in &page.events {
                assert!(event.id > last, "{} after {last}", event.id);
                last = event.id;
                seen.push(event.clone());
            }
            if finished && page.events.is_empty() {
                return seen;
            }
            // SQLite's reads may finish without waiting: let the writers on.
            tokio::task::yield_now().await;
        }
    };
    let writers = async {
        tokio::join!(
            writer(0),
            writer(1),
            writer(2),
            writer(3),
            writer(4),
            writer(5),
            revoke(store, other, others[0]),
        );
        done.store(true, Ordering::SeqCst);
    };
    let ((), seen) = tokio::join!(writers, reader);

    let mut revoked: Vec<_> = seen.iter().map(|event| event.credential_id).collect();
    assert!(
        seen.iter()
            .all(|event| event.change == KeyChangeKind::Revoked)
    );
    revoked.sort_by_key(|id| id.to_string());
    let mut expected = ids.clone();
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(
        revoked, expected,
        "every revocation, once, and no other organization's"
    );

    // Read again from the start, the same sequence.
    let again = store.key_events(org, start, 100).await.unwrap();
    assert_eq!(again.events, seen);
    assert!(again.latest >= seen.last().unwrap().id);
}

/// Each kind of change is logged with its credential; pruning moves the horizon.
pub async fn key_events_name_the_change_and_are_pruned_behind_a_horizon(store: &dyn Store) {
    let (org, bootstrap) = organization(store, "Acme").await;
    let ids = keys(store, org, bootstrap, 2).await;
    let start = store.key_events(org, 0, 0).await.unwrap();
    assert!(start.events.is_empty());
    assert!(start.latest >= start.pruned_through);

    let changes = keyward_store::CredentialChanges {
        name: Some(crate::name("Renamed")),
        ..Default::default()
    };
    store
        .update_credential(&AuditContext::SYSTEM, org, ids[0], changes)
        .await
        .unwrap()
        .unwrap();
    let suspend = keyward_store::OrganizationChanges {
        suspended: Some(true),
        ..Default::default()
    };
    store
        .update_organization(&AuditContext::SYSTEM, org, suspend, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    revoke(store, org, ids[1]).await;

    let page = store.key_events(org, start.latest, 100).await.unwrap();
    let logged: Vec<_> = page
        .events
        .iter()
        .map(|event| (event.credential_id, event.change))
        .collect();
    assert_eq!(logged[0], (ids[0], KeyChangeKind::Changed));
    // Suspension: every usable credential of the organization, in one transaction.
    let suspended: Vec<_> = logged[1..4].iter().map(|(id, _)| *id).collect();
    assert!(
        logged[1..4]
            .iter()
            .all(|(_, change)| *change == KeyChangeKind::Suspension)
    );
    for id in [bootstrap, ids[0], ids[1]] {
        assert!(suspended.contains(&id), "{id} suspended");
    }
    assert_eq!(logged[4], (ids[1], KeyChangeKind::Revoked));
    assert_eq!(logged.len(), 5);
    assert_eq!(page.latest, page.events[4].id);
    // Pages are in order and stop at the limit.
    let two = store.key_events(org, start.latest, 2).await.unwrap();
    assert_eq!(two.events, page.events[..2]);

    // Nothing is older than an hour ago; everything is older than an hour ahead.
    let hour = 3_600;
    assert_eq!(
        store
            .prune_key_events(Timestamp::now().plus_seconds(-hour), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .prune_key_events(Timestamp::now().plus_seconds(hour), 3)
            .await
            .unwrap(),
        3,
        "a batch at a time"
    );
    let after = store.key_events(org, start.latest, 100).await.unwrap();
    assert_eq!(after.events, page.events[3..], "the oldest went first");
    assert_eq!(after.pruned_through, page.events[2].id);
    store
        .prune_key_events(Timestamp::now().plus_seconds(hour), 100)
        .await
        .unwrap();
    let empty = store.key_events(org, 0, 100).await.unwrap();
    assert!(empty.events.is_empty());
    assert_eq!(empty.pruned_through, page.events[4].id);
    assert_eq!(
        empty.latest, empty.pruned_through,
        "an empty log is at its horizon"
    );
}

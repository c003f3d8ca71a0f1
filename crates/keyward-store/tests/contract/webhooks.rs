//! Webhook endpoints, the outbox written with each change, claiming and finishing deliveries,
//! and the expiry notices.

use keyward_core::webhook::{EventType, EventTypes};
use keyward_core::{Timestamp, WebhookId};
use keyward_store::{
    AttemptRecord, AuditContext, Creator, DeliveryState, InFlightLimits, NewWebhook, NextStep,
    Page, Store, StoreError, WebhookChanges,
};

use crate::{new_credential, organization, scope_names};

fn endpoint(organization: keyward_core::OrganizationId, events: &[EventType]) -> NewWebhook {
    NewWebhook {
        id: WebhookId::generate(),
        organization_id: organization,
        url: "https://hooks.example.com/keyward".into(),
        description: "ops".into(),
        events: events.iter().copied().collect(),
        secret_check: "0011223344556677".into(),
        created_at: Timestamp::now(),
    }
}

/// A new API key of `org` reading instances, made by its first key.
fn key_of(
    org: keyward_core::OrganizationId,
    owner_key: keyward_core::CredentialId,
    name: &str,
) -> keyward_store::NewCredential {
    new_credential(
        org,
        Creator::Credential(owner_key),
        None,
        name,
        scope_names(&["instances:read"]),
    )
}

/// `per_endpoint` in flight per endpoint, and as many as that allows per organization.
fn shares(per_endpoint: i64) -> InFlightLimits {
    InFlightLimits {
        per_endpoint,
        per_organization: per_endpoint * keyward_store::MAX_WEBHOOKS,
    }
}

fn attempt(status: Option<u16>) -> AttemptRecord {
    AttemptRecord {
        attempted_at: Timestamp::now(),
        status,
        latency_ms: 12,
        error: status.is_none().then(|| "connection refused".into()),
    }
}

pub async fn endpoints_are_managed_within_their_organization(store: &dyn Store) {
    let (org, _) = organization(store, "Acme").await;
    let (other, _) = organization(store, "Globex").await;
    let audit = &AuditContext::SYSTEM;
    let made = store
        .insert_webhook(audit, endpoint(org, &[EventType::ApiKeyCreated]))
        .await
        .unwrap();
    assert_eq!(store.list_webhooks(org).await.unwrap(), vec![made.clone()]);
    assert!(store.list_webhooks(other).await.unwrap().is_empty());
    assert!(store.get_webhook(other, made.id).await.unwrap().is_none());

    let changes = WebhookChanges {
        events: Some(EventTypes::parse(&["api_key.revoked"]).unwrap()),
        enabled: Some(false),
        ..WebhookChanges::default()
    };
    assert!(
        store
            .update_webhook(audit, other, made.id, changes.clone())
            .await
            .unwrap()
            .is_none()
    );
    let changed = store
        .update_webhook(audit, org, made.id, changes)
        .await
        .unwrap()
        .unwrap();
    assert!(!changed.enabled);
    assert_eq!(changed.events.names(), ["api_key.revoked"]);
    assert_eq!(changed.url, made.url, "left as it was");

    assert!(!store.delete_webhook(audit, other, made.id).await.unwrap());
    assert!(store.delete_webhook(audit, org, made.id).await.unwrap());
    assert!(store.get_webhook(org, made.id).await.unwrap().is_none());

    // At most MAX_WEBHOOKS per organization.
    for _ in 0..keyward_store::MAX_WEBHOOKS {
        store
            .insert_webhook(audit, endpoint(org, &[EventType::ApiKeyCreated]))
            .await
            .unwrap();
    }
    let refused = store
        .insert_webhook(audit, endpoint(org, &[EventType::ApiKeyCreated]))
        .await;
    assert!(matches!(
        refused,
        Err(StoreError::Conflict("webhook limit"))
    ));
}

pub async fn changes_write_messages_for_subscribed_endpoints_only(store: &dyn Store) {
    let (org, owner_key) = organization(store, "Acme").await;
    let audit = &AuditContext::SYSTEM;
    let created_only = store
        .insert_webhook(audit, endpoint(org, &[EventType::ApiKeyCreated]))
        .await
        .unwrap();
    let revoked_only = store
        .insert_webhook(audit, endpoint(org, &[EventType::ApiKeyRevoked]))
        .await
        .unwrap();
    let key = key_of(org, owner_key, "CI");
    let record = store.insert_credential(audit, key).await.unwrap();
    store
        .revoke_credential(audit, org, record.id, Timestamp::now())
        .await
        .unwrap();

    let first = Page::first(10);
    let to_created = store
        .list_webhook_deliveries(org, created_only.id, first)
        .await
        .unwrap();
    assert_eq!(to_created.items.len(), 1);
    assert_eq!(to_created.items[0].event_type, "api_key.created");
    assert_eq!(to_created.items[0].state, DeliveryState::Pending);
    let to_revoked = store
        .list_webhook_deliveries(org, revoked_only.id, first)
        .await
        .unwrap();
    assert_eq!(to_revoked.items.len(), 1);
    assert_eq!(to_revoked.items[0].event_type, "api_key.revoked");

    let (_, _, payload) = store
        .get_webhook_delivery(org, created_only.id, to_created.items[0].message_id)
        .await
        .unwrap()
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["type"], "api_key.created");
    assert_eq!(payload["data"]["id"], record.id.to_string());
    assert_eq!(payload["data"]["hint"], record.hint);
    assert!(payload["timestamp"].is_string());
    assert!(
        payload.to_string().len() < 1024,
        "no key, only what lists show"
    );
}

pub async fn deliveries_are_claimed_once_and_retried_until_done(store: &dyn Store) {
    let (org, owner_key) = organization(store, "Acme").await;
    let audit = &AuditContext::SYSTEM;
    let hook = store
        .insert_webhook(audit, endpoint(org, &[EventType::ApiKeyCreated]))
        .await
        .unwrap();
    let key = key_of(org, owner_key, "CI");
    store.insert_credential(audit, key).await.unwrap();

    let now = Timestamp::now();
    let claimed = store
        .claim_webhook_deliveries(now, 60, 10, shares(4))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].endpoint_id, hook.id);
    assert_eq!(claimed[0].attempts, 0);
    // Leased: nobody claims it again meanwhile.
    assert!(
        store
            .claim_webhook_deliveries(now, 60, 10, shares(4))
            .await
            .unwrap()
            .is_empty()
    );

    let retry_at = now.plus_seconds(5);
    store
        .finish_webhook_delivery(&claimed[0], &attempt(None), NextStep::RetryAt(retry_at))
        .await
        .unwrap();
    assert!(
        store
            .claim_webhook_deliveries(now, 60, 10, shares(4))
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_webhook_deliveries(retry_at, 60, 10, shares(4))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    store
        .finish_webhook_delivery(&again[0], &attempt(Some(204)), NextStep::Delivered)
        .await
        .unwrap();
    let (delivery, attempts, _) = store
        .get_webhook_delivery(org, hook.id, again[0].message_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.state, DeliveryState::Delivered);
    assert_eq!(delivery.attempts, 2);
    assert_eq!(delivery.last_status, Some(204));
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].error.as_deref(), Some("connection refused"));
    assert_eq!(attempts[1].status, Some(204));
    let later = retry_at.plus_seconds(3600);
    assert!(
        store
            .claim_webhook_deliveries(later, 60, 10, shares(4))
            .await
            .unwrap()
            .is_empty()
    );

    // A manual redelivery makes it due again, and is audited.
    assert!(
        store
            .redeliver_webhook(audit, org, hook.id, again[0].message_id, later)
            .await
            .unwrap()
    );
    let redelivered = store
        .claim_webhook_deliveries(later, 60, 10, shares(4))
        .await
        .unwrap();
    assert_eq!(redelivered.len(), 1);
    assert_eq!(redelivered[0].message_id, again[0].message_id);
    let (other, _) = organization(store, "Globex").await;
    assert!(
        !store
            .redeliver_webhook(audit, other, hook.id, again[0].message_id, later)
            .await
            .unwrap()
    );
}

pub async fn expiry_notices_are_written_once_each(store: &dyn Store) {
    let (org, owner_key) = organization(store, "Acme").await;
    let audit = &AuditContext::SYSTEM;
    let hook = store
        .insert_webhook(
            audit,
            endpoint(org, &[EventType::ApiKeyExpiring, EventType::ApiKeyExpired]),
        )
        .await
        .unwrap();
    let now = Timestamp::now();
    let mut key = key_of(org, owner_key, "expires in 3 days");
    key.expires_at = Some(now.plus_seconds(3 * 86_400));
    store.insert_credential(audit, key).await.unwrap();
    let mut far = key_of(org, owner_key, "expires in 30 days");
    far.expires_at = Some(now.plus_seconds(30 * 86_400));
    store.insert_credential(audit, far).await.unwrap();

    assert_eq!(
        store
            .scan_expiring_credentials(now, 100, false)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .scan_expiring_credentials(now, 100, false)
            .await
            .unwrap(),
        0,
        "once"
    );
    assert_eq!(
        delivered_types(store, org, hook.id).await,
        ["api_key.expiring"]
    );
    // Two days on: within a day of expiry.
    let later = now.plus_seconds(2 * 86_400 + 60);
    assert_eq!(
        store
            .scan_expiring_credentials(later, 100, false)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .scan_expiring_credentials(later, 100, false)
            .await
            .unwrap(),
        0
    );
    // Past the expiry: expired, once.
    let past = now.plus_seconds(3 * 86_400 + 1);
    assert_eq!(
        store
            .scan_expiring_credentials(past, 100, false)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .scan_expiring_credentials(past, 100, false)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        delivered_types(store, org, hook.id).await,
        ["api_key.expiring", "api_key.expiring", "api_key.expired"]
    );
    // A revoked credential is never announced.
    let mut revoked = key_of(org, owner_key, "revoked");
    revoked.expires_at = Some(now.plus_seconds(86_400));
    let revoked = store.insert_credential(audit, revoked).await.unwrap();
    store
        .revoke_credential(audit, org, revoked.id, now)
        .await
        .unwrap();
    assert_eq!(
        store
            .scan_expiring_credentials(now, 100, false)
            .await
            .unwrap(),
        0
    );
}

/// The event types of an endpoint's deliveries, oldest first.
async fn delivered_types(
    store: &dyn Store,
    org: keyward_core::OrganizationId,
    hook: WebhookId,
) -> Vec<String> {
    let page = store
        .list_webhook_deliveries(org, hook, Page::first(50))
        .await
        .unwrap();
    page.items.into_iter().rev().map(|d| d.event_type).collect()
}

pub async fn a_lapsed_lease_or_a_disabled_endpoint_sends_nothing_twice(store: &dyn Store) {
    let (org, owner_key) = organization(store, "Acme").await;
    let audit = &AuditContext::SYSTEM;
    let hook = store
        .insert_webhook(audit, endpoint(org, &[EventType::ApiKeyCreated]))
        .await
        .unwrap();
    let key = key_of(org, owner_key, "CI");
    store.insert_credential(audit, key).await.unwrap();
    let now = Timestamp::now();

    // Disabled: its deliveries wait, unclaimed; enabled again, they go.
    let disable = WebhookChanges {
        enabled: Some(false),
        ..WebhookChanges::default()
    };
    store
        .update_webhook(audit, org, hook.id, disable)
        .await
        .unwrap();
    assert!(
        store
            .claim_webhook_deliveries(now, 60, 10, shares(4))
            .await
            .unwrap()
            .is_empty()
    );
    let enable = WebhookChanges {
        enabled: Some(true),
        ..WebhookChanges::default()
    };
    store
        .update_webhook(audit, org, hook.id, enable)
        .await
        .unwrap();

    // A node claims it and stalls past its lease; another takes it over and delivers.
    let stalled = store
        .claim_webhook_deliveries(now, 60, 10, shares(4))
        .await
        .unwrap();
    assert_eq!(stalled.len(), 1);
    let later = now.plus_seconds(61);
    let taken_over = store
        .claim_webhook_deliveries(later, 60, 10, shares(4))
        .await
        .unwrap();
    assert_eq!(taken_over.len(), 1);
    store
        .finish_webhook_delivery(&taken_over[0], &attempt(Some(200)), NextStep::Delivered)
        .await
        .unwrap();
    // The stalled node's late answer is recorded as an attempt, and changes nothing else.
    store
        .finish_webhook_delivery(
            &stalled[0],
            &attempt(None),
            NextStep::RetryAt(later.plus_seconds(5)),
        )
        .await
        .unwrap();
    let (delivery, attempts, _) = store
        .get_webhook_delivery(org, hook.id, stalled[0].message_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.state, DeliveryState::Delivered);
    assert_eq!(delivery.attempts, 1);
    assert_eq!(attempts.len(), 2);
    let much_later = later.plus_seconds(3600);
    assert!(
        store
            .claim_webhook_deliveries(much_later, 60, 10, shares(4))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A receiver that hangs holds its endpoint's share of deliveries, and nothing else: claims
/// skip an endpoint with its share in flight, take no more than its share from any one, and
/// a stopping node's released deliveries are due again at once, attempts uncounted.
pub async fn a_busy_endpoint_holds_only_its_share_and_releases_come_back(store: &dyn Store) {
    let audit = &AuditContext::SYSTEM;
    let (slow_org, slow_owner) = organization(store, "Slow").await;
    let (fast_org, fast_owner) = organization(store, "Fast").await;
    let slow = store
        .insert_webhook(audit, endpoint(slow_org, &[EventType::ApiKeyCreated]))
        .await
        .unwrap();
    let fast = store
        .insert_webhook(audit, endpoint(fast_org, &[EventType::ApiKeyCreated]))
        .await
        .unwrap();
    for i in 0..6 {
        let key = key_of(slow_org, slow_owner, &format!("key {i}"));
        store.insert_credential(audit, key).await.unwrap();
    }
    let key = key_of(fast_org, fast_owner, "fast key");
    store.insert_credential(audit, key).await.unwrap();
    let of = |claimed: &[keyward_store::ClaimedDelivery], hook: WebhookId| {
        claimed.iter().filter(|d| d.endpoint_id == hook).count()
    };

    let now = Timestamp::now();
    let first = store
        .claim_webhook_deliveries(now, 60, 32, shares(2))
        .await
        .unwrap();
    assert_eq!((of(&first, slow.id), of(&first, fast.id)), (2, 1));
    // The slow endpoint has its share in flight: its four other due deliveries wait.
    assert!(
        store
            .claim_webhook_deliveries(now, 60, 32, shares(2))
            .await
            .unwrap()
            .is_empty()
    );
    // One answer frees one place.
    let slow_claimed: Vec<_> = first.iter().filter(|d| d.endpoint_id == slow.id).collect();
    store
        .finish_webhook_delivery(slow_claimed[0], &attempt(Some(204)), NextStep::Delivered)
        .await
        .unwrap();
    let second = store
        .claim_webhook_deliveries(now, 60, 32, shares(2))
        .await
        .unwrap();
    assert_eq!((of(&second, slow.id), of(&second, fast.id)), (1, 0));

    // Released (the node stops), they are due again at once, without an attempt counted.
    let held = [slow_claimed[1].clone(), second[0].clone()];
    store.release_webhook_deliveries(&held).await.unwrap();
    let soon = now.plus_seconds(1);
    let again = store
        .claim_webhook_deliveries(soon, 60, 32, shares(10))
        .await
        .unwrap();
    assert_eq!(
        of(&again, slow.id),
        5,
        "three never sent and the two given back"
    );
    let reclaimed: Vec<_> = again.iter().map(|d| d.message_id).collect();
    assert!(held.iter().all(|d| reclaimed.contains(&d.message_id)));
    assert!(again.iter().all(|d| d.attempts == 0));
    // A node that cannot sign (its key differs) postpones a delivery without holding it:
    // the endpoint's others go meanwhile, from any node.
    let mut postponed = again.clone();
    let held_back = postponed.remove(0);
    store.release_webhook_deliveries(&postponed).await.unwrap();
    let retry_at = soon.plus_seconds(60);
    store
        .finish_webhook_delivery(&held_back, &attempt(None), NextStep::Release(retry_at))
        .await
        .unwrap();
    let others = store
        .claim_webhook_deliveries(soon, 60, 32, shares(4))
        .await
        .unwrap();
    assert_eq!(
        of(&others, slow.id),
        4,
        "the postponed one is not in flight"
    );
    assert!(others.iter().all(|d| d.message_id != held_back.message_id));
    let (delivery, attempts, _) = store
        .get_webhook_delivery(slow_org, slow.id, held_back.message_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (delivery.attempts, attempts.len()),
        (0, 0),
        "no attempt counted"
    );
    assert_eq!(delivery.next_attempt_at, Some(retry_at));
    store.release_webhook_deliveries(&others).await.unwrap();
    let later = store
        .claim_webhook_deliveries(retry_at, 60, 32, shares(10))
        .await
        .unwrap();
    assert!(later.iter().any(|d| d.message_id == held_back.message_id));
    store.release_webhook_deliveries(&later).await.unwrap();
    let current = store
        .claim_webhook_deliveries(soon, 60, 32, shares(10))
        .await
        .unwrap();
    assert_eq!(of(&current, slow.id), 4);
    // A release by a claim whose lease is no longer the delivery's changes nothing.
    store.release_webhook_deliveries(&held).await.unwrap();
    assert!(
        store
            .claim_webhook_deliveries(soon, 60, 32, shares(10))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Deliveries are not ordered, but a receiver can order one credential's messages: by the
/// payload's `timestamp`, then by message id, they come in the order of its changes, even
/// within one second.
pub async fn one_credentials_messages_sort_in_the_order_of_its_changes(store: &dyn Store) {
    let (org, owner_key) = organization(store, "Acme").await;
    let audit = &AuditContext::SYSTEM;
    let hook = store
        .insert_webhook(
            audit,
            endpoint(org, &[EventType::ApiKeyCreated, EventType::ApiKeyRevoked]),
        )
        .await
        .unwrap();
    for i in 0..20 {
        let key = key_of(org, owner_key, &format!("key {i}"));
        let record = store.insert_credential(audit, key).await.unwrap();
        store
            .revoke_credential(audit, org, record.id, Timestamp::now())
            .await
            .unwrap();
    }
    let deliveries = store
        .list_webhook_deliveries(org, hook.id, Page::first(100))
        .await
        .unwrap()
        .items;
    assert_eq!(deliveries.len(), 40);
    let mut by_key: std::collections::HashMap<String, Vec<(String, String, String)>> =
        std::collections::HashMap::new();
    for delivery in deliveries {
        let (_, _, payload) = store
            .get_webhook_delivery(org, hook.id, delivery.message_id)
            .await
            .unwrap()
            .unwrap();
        let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
        by_key
            .entry(payload["data"]["id"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                payload["timestamp"].as_str().unwrap().to_owned(),
                delivery.message_id.to_string(),
                payload["type"].as_str().unwrap().to_owned(),
            ));
    }
    for (key, mut messages) in by_key {
        // Sorted as a receiver would: timestamp (RFC 3339 UTC sorts as text), then id.
        messages.sort();
        let types: Vec<&str> = messages.iter().map(|(_, _, t)| t.as_str()).collect();
        assert_eq!(types, ["api_key.created", "api_key.revoked"], "{key}");
    }
}

/// An organization's endpoints together hold at most its share: claims take no more, and
/// leave it alone once it has it, so many hanging endpoints of one organization delay
/// nobody else's either.
pub async fn an_organization_holds_only_its_share(store: &dyn Store) {
    let audit = &AuditContext::SYSTEM;
    let (busy_org, busy_owner) = organization(store, "Busy").await;
    let (other_org, other_owner) = organization(store, "Other").await;
    for _ in 0..3 {
        store
            .insert_webhook(audit, endpoint(busy_org, &[EventType::ApiKeyCreated]))
            .await
            .unwrap();
    }
    let other = store
        .insert_webhook(audit, endpoint(other_org, &[EventType::ApiKeyCreated]))
        .await
        .unwrap();
    for i in 0..4 {
        let key = key_of(busy_org, busy_owner, &format!("key {i}"));
        store.insert_credential(audit, key).await.unwrap();
    }
    let key = key_of(other_org, other_owner, "other key");
    store.insert_credential(audit, key).await.unwrap();
    let limits = InFlightLimits {
        per_endpoint: 4,
        per_organization: 5,
    };
    let now = Timestamp::now();
    // Twelve due for Busy (three endpoints, four messages), one for Other.
    let first = store
        .claim_webhook_deliveries(now, 60, 32, limits)
        .await
        .unwrap();
    let busy = first
        .iter()
        .filter(|d| d.organization_id == busy_org)
        .count();
    assert_eq!(busy, 5, "the organization's share");
    assert!(first.iter().any(|d| d.endpoint_id == other.id));
    assert!(
        store
            .claim_webhook_deliveries(now, 60, 32, limits)
            .await
            .unwrap()
            .is_empty(),
        "Busy has its share in flight; its other seven wait"
    );
}

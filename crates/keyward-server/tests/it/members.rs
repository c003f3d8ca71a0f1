//! `/v1/members`: the dashboard's member rules through the API, and their audit events.

use reqwest::{Method, StatusCode};
use serde_json::json;

use keyward_core::Role;

use crate::dashboard::Visitor;
use crate::helpers::{Answer, Org, TestApp, builtin_scopes, event};

#[tokio::test]
async fn members_are_added_changed_and_removed_with_the_dashboards_rules() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    // Grace has an account (her own organization) but is not in Acme.
    let mut grace = Visitor::new(&app);
    grace.sign_up("grace@example.com", "Grace's").await;

    let listed = app.get("/v1/members", &org.key).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let members = listed.body["data"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["role"], "owner");
    let owner = members[0]["user_id"].as_str().unwrap().to_owned();

    // Adding is inviting: the same answer whether or not an account has the email.
    let invited = app
        .post(
            "/v1/members",
            &org.key,
            json!({ "email": "grace@example.com", "role": "member" }),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    assert_eq!(invited.body["email"], "grace@example.com");
    assert_eq!(invited.body["role"], "member");
    assert_eq!(invited.body["status"], "pending");
    assert_eq!(invited.body["emailed"], false);
    assert_eq!(
        invited.body["invited_by"]["credential_id"],
        org.key_id.to_string()
    );
    let invitation = invited.body["invitation_id"].as_str().unwrap().to_owned();
    assert!(invitation.starts_with("inv_"));
    assert_eq!(
        invited.header("location"),
        Some(format!("/v1/invitations/{invitation}").as_str())
    );
    let unknown = app
        .post(
            "/v1/members",
            &org.key,
            json!({ "email": "nobody@example.com", "role": "member" }),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::CREATED, "{}", unknown.body);
    let fields = |body: &serde_json::Value| {
        let mut keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(fields(&unknown.body), fields(&invited.body));
    assert_eq!(unknown.body["status"], "pending");
    // One open invitation per address.
    app.post(
        "/v1/members",
        &org.key,
        json!({ "email": "grace@example.com", "role": "member" }),
    )
    .await
    .problem(409, "conflict");
    let open = app.get("/v1/invitations", &org.key).await;
    assert_eq!(open.status, StatusCode::OK, "{}", open.body);
    let emails: Vec<&str> = open.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["nobody@example.com", "grace@example.com"]);
    // Nobody joined yet.
    assert_eq!(
        app.get("/v1/members", &org.key).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Grace accepts (this installation sends no email: at her next visit, signed in).
    crate::dashboard::accept_invitation(&mut grace, "Acme").await;
    let shown = app
        .get(&format!("/v1/invitations/{invitation}"), &org.key)
        .await;
    assert_eq!(shown.body["status"], "accepted", "{}", shown.body);
    let grace_id = member_id(&app, &org, "grace@example.com").await;
    app.post(
        "/v1/members",
        &org.key,
        json!({ "email": "grace@example.com", "role": "member" }),
    )
    .await
    .problem(409, "conflict");
    let bad = app
        .post(
            "/v1/members",
            &org.key,
            json!({ "email": "x", "role": "root" }),
        )
        .await;
    assert_eq!(
        bad.problem(422, "validation_failed")["errors"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let path = format!("/v1/members/{grace_id}");
    // A key never raises anyone (a_key_never_makes_a_person_who_outlasts_or_outgrows_it);
    // an owner makes Grace an admin, and the key may lower her again.
    app.call(
        Method::PATCH,
        &path,
        Some(&org.key),
        Some(json!({ "role": "admin" })),
    )
    .await
    .problem(403, "forbidden");
    promote(&app, &org, &grace_id).await;
    let lowered = app
        .call(
            Method::PATCH,
            &path,
            Some(&org.key),
            Some(json!({ "role": "member" })),
        )
        .await;
    assert_eq!(lowered.status, StatusCode::OK, "{}", lowered.body);
    assert_eq!(lowered.body["role"], "member");
    assert_eq!(app.get(&path, &org.key).await.body["role"], "member");

    // A key never touches owners, nor makes one: people who are owners do, in the dashboard
    // (where the last owner stays, as dashboard::roles_limit_what_people_grant_see_and_revoke
    // shows).
    let owner_path = format!("/v1/members/{owner}");
    app.call(
        Method::PATCH,
        &owner_path,
        Some(&org.key),
        Some(json!({ "role": "member" })),
    )
    .await
    .problem(403, "forbidden");
    app.delete(&owner_path, &org.key)
        .await
        .problem(403, "forbidden");
    app.call(
        Method::PATCH,
        &path,
        Some(&org.key),
        Some(json!({ "role": "owner" })),
    )
    .await
    .problem(403, "forbidden");
    app.post(
        "/v1/members",
        &org.key,
        json!({ "email": "grace@example.com", "role": "owner" }),
    )
    .await
    .problem(403, "forbidden");

    assert_eq!(
        app.delete(&path, &org.key).await.status,
        StatusCode::NO_CONTENT
    );
    app.get(&path, &org.key).await.problem(404, "not_found");
    app.delete(&path, &org.key).await.problem(404, "not_found");
    app.get("/v1/members/usr_nonsense", &org.key)
        .await
        .problem(404, "not_found");

    // One event per change, none for the refusals.
    let trail = app.audit_trail(org.id).await;
    let nobody = unknown.body["invitation_id"].as_str().unwrap();
    assert_eq!(
        trail[2..],
        [
            event("invitation.created", &invitation),
            event("invitation.created", nobody),
            event("member.added", &grace_id),
            event("member.role_changed", &grace_id),
            event("member.role_changed", &grace_id),
            event("member.removed", &grace_id),
        ]
    );
}

/// The user id of the member with `email`.
pub(crate) async fn member_id(app: &TestApp, org: &Org, email: &str) -> String {
    let members = app.get("/v1/members", &org.key).await;
    members.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == email)
        .unwrap_or_else(|| panic!("{email} is a member: {}", members.body))["user_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// What a person who is an owner does in Settings > Members: make a member an admin.
async fn promote(app: &TestApp, org: &Org, user: &str) {
    let user = keyward_core::UserId::parse(user).unwrap();
    let change = app
        .store
        .change_member_role(
            &keyward_store::AuditContext::SYSTEM,
            org.id,
            user,
            Role::Member,
            Role::Admin,
        )
        .await
        .unwrap();
    assert_eq!(change, keyward_store::MembershipChange::Done);
}

/// Asserts a 403 `forbidden` whose detail says `why`.
fn forbidden_because(answer: &Answer, why: &str) {
    let detail = answer.problem(403, "forbidden")["detail"].as_str().unwrap();
    assert!(detail.contains(why), "{detail}");
}

/// A person outlives the key that added them and makes keys of their own: a key with
/// `members:write` that could add an admin, or add anyone while it expires or holds less than
/// a member may grant, would turn itself into a person with more than it holds, for longer.
#[tokio::test]
async fn a_key_never_makes_a_person_who_outlasts_or_outgrows_it() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let mut eve = Visitor::new(&app);
    eve.sign_up("eve@example.com", "Eve's").await;
    let add = async |key: &str, role: &str| {
        app.post(
            "/v1/members",
            key,
            json!({ "email": "eve@example.com", "role": role }),
        )
        .await
    };
    let in_an_hour = keyward_core::Timestamp::now()
        .plus_seconds(3600)
        .to_string();

    // The attack: a key for members only, expiring in an hour.
    let brief = app
        .post(
            "/v1/api-keys",
            &org.key,
            json!({ "name": "brief", "scopes": ["members:read", "members:write"], "expires_at": in_an_hour }),
        )
        .await;
    let brief = brief.body["key"].as_str().unwrap().to_owned();
    forbidden_because(&add(&brief, "admin").await, "cannot make admins");
    forbidden_because(&add(&brief, "member").await, "expires");

    // Lasting, but holding less than a member may grant.
    let (_, narrow) = app
        .create_key(&org.key, "narrow", &["members:read", "members:write"])
        .await;
    forbidden_because(
        &add(&narrow, "member").await,
        "every scope a member may grant",
    );

    // Lasting and holding every scope a member may grant: members, never admins.
    let member_cap = builtin_scopes().role_cap(Role::Member);
    let mut scopes: Vec<&str> = builtin_scopes().names(&member_cap).collect();
    scopes.extend(["members:read", "members:write"]);
    let (staff_id, staff) = app.create_key(&org.key, "staff", &scopes).await;
    add(&staff, "admin").await.problem(403, "forbidden");
    let added = add(&staff, "member").await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    crate::dashboard::accept_invitation(&mut eve, "Acme").await;
    let eve_id = member_id(&app, &org, "eve@example.com").await;
    let path = format!("/v1/members/{eve_id}");
    app.patch(&path, &staff, json!({ "role": "admin" }))
        .await
        .problem(403, "forbidden");
    assert_eq!(app.get(&path, &org.key).await.body["role"], "member");
    assert_eq!(
        app.delete(&path, &staff).await.status,
        StatusCode::NO_CONTENT
    );

    // The same key once rotated ends with its grace: it adds nobody any more, and an
    // invitation it made before no longer holds (checked when it is accepted).
    let again = add(&staff, "member").await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let rotated = app
        .post(
            &format!("/v1/api-keys/{staff_id}/rotate"),
            &org.key,
            json!({ "grace_seconds": 3600 }),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    add(&staff, "member").await.problem(403, "forbidden");
    app.get(&path, &org.key).await.problem(404, "not_found");
    let list = eve.get("/invitations").await;
    let accept = eve
        .post(
            &format!(
                "/invitations/{}/accept",
                again.body["invitation_id"].as_str().unwrap()
            ),
            &[("csrf_token", &list.csrf_token())],
        )
        .await;
    assert_eq!(accept.status, StatusCode::GONE, "{}", accept.body);
    assert!(accept.body.contains("can no longer give this role"));
    app.get(&path, &org.key).await.problem(404, "not_found");

    // Eve never became an admin, so she has no key the brief one could not have made.
    let trail = app.audit_trail(org.id).await;
    let eve_events: Vec<_> = trail
        .iter()
        .filter(|(_, target)| target == &eve_id)
        .collect();
    assert_eq!(
        eve_events,
        [
            &event("member.added", &eve_id),
            &event("member.removed", &eve_id)
        ]
    );
}

#[tokio::test]
async fn members_need_their_scopes() {
    let app = TestApp::spawn().await;
    let org = app.bootstrap("Acme").await;
    let (_, reader) = app.create_key(&org.key, "Reader", &["members:read"]).await;
    assert_eq!(app.get("/v1/members", &reader).await.status, StatusCode::OK);
    let refused = app
        .post(
            "/v1/members",
            &reader,
            json!({ "email": "a@example.com", "role": "member" }),
        )
        .await;
    assert_eq!(
        refused.problem(403, "insufficient_scope")["scope"],
        "members:write"
    );
}

use keyward_core::{Email, KeyDigest, OrganizationId, Role, Timestamp, UserId};
use keyward_store::{
    LoginAttempt, LoginFailures, MembershipChange, NewOrganization, NewOwner, NewSession, Store,
    StoreError,
};

use crate::name;

/// Creates a user (owning a fresh organization of their own) and returns both.
pub(crate) async fn person(store: &dyn Store, email: &str) -> (UserId, OrganizationId) {
    let user = UserId::generate();
    let organization = OrganizationId::generate();
    store
        .create_organization(
            &keyward_store::AuditContext::SYSTEM,
            NewOrganization {
                id: organization,
                name: name(&format!("{email}'s organization")),
                created_at: Timestamp::now(),
                external_id: None,
                policy: Default::default(),
                unique_name: false,
            },
            NewOwner::Create {
                id: user,
                email: Email::parse(email).unwrap(),
                password_hash: "$argon2id$x".into(),
            },
            None,
        )
        .await
        .unwrap();
    (user, organization)
}

pub async fn members_have_roles_and_an_organization_keeps_an_owner(store: &dyn Store) {
    let (ada, acme) = person(store, "ada@example.com").await;
    let (bob, bobs_own) = person(store, "bob@example.com").await;
    let now = Timestamp::now();
    store
        .add_member(
            &keyward_store::AuditContext::SYSTEM,
            acme,
            bob,
            Role::Member,
            now,
        )
        .await
        .unwrap();
    let again = store
        .add_member(
            &keyward_store::AuditContext::SYSTEM,
            acme,
            bob,
            Role::Admin,
            now,
        )
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict("member"))),
        "{again:?}"
    );
    let stranger = store
        .add_member(
            &keyward_store::AuditContext::SYSTEM,
            acme,
            UserId::generate(),
            Role::Member,
            now,
        )
        .await;
    assert!(
        matches!(stranger, Err(StoreError::NotFound("user"))),
        "{stranger:?}"
    );

    let members = store.members(acme).await.unwrap();
    let listed: Vec<_> = members.iter().map(|m| (m.email.as_str(), m.role)).collect();
    assert_eq!(
        listed,
        [
            ("ada@example.com", Role::Owner),
            ("bob@example.com", Role::Member)
        ]
    );
    let bobs: Vec<_> = store
        .memberships_of(bob)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.organization_id, m.role))
        .collect();
    assert!(bobs.contains(&(acme, Role::Member)) && bobs.contains(&(bobs_own, Role::Owner)));

    let change = |user, from, to| {
        store.change_member_role(&keyward_store::AuditContext::SYSTEM, acme, user, from, to)
    };
    let remove =
        |user, from| store.remove_member(&keyward_store::AuditContext::SYSTEM, acme, user, from);
    use MembershipChange::{Done, LastOwner, NotFound, Stale};
    assert_eq!(
        change(ada, Role::Owner, Role::Admin).await.unwrap(),
        LastOwner
    );
    assert_eq!(remove(ada, Role::Owner).await.unwrap(), LastOwner);
    // A caller who looked at a role that is no longer true changes nothing.
    assert_eq!(change(bob, Role::Admin, Role::Owner).await.unwrap(), Stale);
    assert_eq!(remove(bob, Role::Admin).await.unwrap(), Stale);
    assert_eq!(change(bob, Role::Member, Role::Owner).await.unwrap(), Done);
    // With a second owner, the first may step down or leave.
    assert_eq!(change(ada, Role::Owner, Role::Admin).await.unwrap(), Done);
    assert_eq!(remove(ada, Role::Admin).await.unwrap(), Done);
    assert_eq!(remove(ada, Role::Admin).await.unwrap(), NotFound);
    assert_eq!(
        change(ada, Role::Admin, Role::Member).await.unwrap(),
        NotFound
    );
    let members = store.members(acme).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!((members[0].user_id, members[0].role), (bob, Role::Owner));
}

pub async fn sessions_carry_the_current_membership(store: &dyn Store) {
    let (ada, acme) = person(store, "ada@example.com").await;
    let (_, globex) = person(store, "bob@example.com").await;
    store
        .add_member(
            &keyward_store::AuditContext::SYSTEM,
            globex,
            ada,
            Role::Member,
            Timestamp::now(),
        )
        .await
        .unwrap();
    let digest = KeyDigest::of("session-cookie-value");
    let now = Timestamp::now();
    store
        .create_session(
            &keyward_store::AuditContext::SYSTEM,
            NewSession {
                token_digest: digest,
                user_id: ada,
                organization_id: Some(acme),
                csrf_token: "csrf".into(),
                created_at: now,
                expires_at: now.plus_seconds(3600),
                portal: None,
                single_sign_on: false,
                opened_by: None,
            },
        )
        .await
        .unwrap();

    let session = store.find_session(&digest, now).await.unwrap().unwrap();
    assert_eq!(session.user_id, ada);
    assert_eq!(session.email.as_str(), "ada@example.com");
    assert_eq!(session.csrf_token, "csrf");
    let membership = session.membership.unwrap();
    assert_eq!(
        (membership.organization_id, membership.role),
        (acme, Role::Owner)
    );

    store
        .set_session_organization(&digest, globex)
        .await
        .unwrap();
    let membership = store
        .find_session(&digest, now)
        .await
        .unwrap()
        .unwrap()
        .membership
        .unwrap();
    assert_eq!(
        (membership.organization_id, membership.role),
        (globex, Role::Member)
    );
    assert_eq!(
        membership.organization_name.as_str(),
        "bob@example.com's organization"
    );

    // Removed from the organization: the session stays, the membership is gone at once.
    store
        .remove_member(
            &keyward_store::AuditContext::SYSTEM,
            globex,
            ada,
            Role::Member,
        )
        .await
        .unwrap();
    let session = store.find_session(&digest, now).await.unwrap().unwrap();
    assert_eq!(session.membership, None);

    assert!(
        store
            .find_session(&digest, now.plus_seconds(3600))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_session(&KeyDigest::of("other"), now)
            .await
            .unwrap()
            .is_none()
    );
    store
        .delete_session(&keyward_store::AuditContext::SYSTEM, &digest)
        .await
        .unwrap();
    assert!(store.find_session(&digest, now).await.unwrap().is_none());
}

pub async fn failed_logins_are_counted_per_email_and_address(store: &dyn Store) {
    let email = Email::parse("ada@example.com").unwrap();
    let other = Email::parse("bob@example.com").unwrap();
    let ip = "192.0.2.1";
    assert_eq!(store.login_failures(&email, ip).await.unwrap(), None);
    let first = Timestamp::from_unix_seconds(1_800_000_000);
    for n in 0..5 {
        let attempt = store
            .begin_login_attempt(&email, ip, first.plus_seconds(n), 5, 60)
            .await
            .unwrap();
        assert_eq!(attempt, LoginAttempt::Allowed, "attempt {n}");
    }
    assert_eq!(
        store.login_failures(&email, ip).await.unwrap(),
        Some(LoginFailures {
            failures: 5,
            last_failure_at: first.plus_seconds(4)
        })
    );
    // Locked for a minute after the last failure, without counting more.
    assert_eq!(
        store
            .begin_login_attempt(&email, ip, first.plus_seconds(14), 5, 60)
            .await
            .unwrap(),
        LoginAttempt::Locked {
            retry_after_seconds: 50
        }
    );
    assert_eq!(
        store
            .login_failures(&email, ip)
            .await
            .unwrap()
            .unwrap()
            .failures,
        5
    );
    // Others are not affected.
    assert_eq!(
        store
            .begin_login_attempt(&email, "192.0.2.2", first, 5, 60)
            .await
            .unwrap(),
        LoginAttempt::Allowed
    );
    assert_eq!(store.login_failures(&other, ip).await.unwrap(), None);
    // A minute later, one more try is allowed, and a failure locks again.
    assert_eq!(
        store
            .begin_login_attempt(&email, ip, first.plus_seconds(64), 5, 60)
            .await
            .unwrap(),
        LoginAttempt::Allowed
    );
    assert!(matches!(
        store
            .begin_login_attempt(&email, ip, first.plus_seconds(65), 5, 60)
            .await
            .unwrap(),
        LoginAttempt::Locked { .. }
    ));
    store.clear_login_failures(&email, ip).await.unwrap();
    assert_eq!(store.login_failures(&email, ip).await.unwrap(), None);
}

/// A key of `organization` that makes portal links.
async fn portal_key(store: &dyn Store, organization: OrganizationId) -> keyward_core::CredentialId {
    let key = crate::new_credential(
        organization,
        keyward_store::Creator::Host,
        None,
        "portal",
        crate::all_scopes(),
    );
    let id = key.id;
    store
        .insert_credential(&keyward_store::AuditContext::SYSTEM, key)
        .await
        .unwrap();
    id
}

fn portal_link(
    organization: OrganizationId,
    key: keyward_core::CredentialId,
    code: &str,
    external_id: &str,
    email: &str,
    role: Role,
    now: Timestamp,
) -> keyward_store::NewPortalLink {
    keyward_store::NewPortalLink {
        code_digest: KeyDigest::of(code),
        credential: key,
        organization,
        person: keyward_store::PortalPerson {
            external_id: keyward_core::ExternalId::parse(external_id).unwrap(),
            email: Email::parse(email).unwrap(),
            name: None,
            vouched: false,
        },
        role,
        confinement: keyward_store::PortalConfinement {
            pages: "api_keys".into(),
            return_url: "https://console.example.com/".into(),
        },
        session_seconds: 600,
        created_at: now,
        expires_at: now.plus_seconds(60),
    }
}

pub async fn portal_links_open_once_for_the_person_the_platform_names(store: &dyn Store) {
    let (ada, acme) = person(store, "ada@example.com").await;
    let key_of_acme = portal_key(store, acme).await;
    let now = Timestamp::now();
    let audit = keyward_store::AuditContext::SYSTEM;
    let grace = store
        .create_portal_link(
            &audit,
            portal_link(
                acme,
                key_of_acme,
                "code-1",
                "u-1",
                "grace@example.com",
                Role::Member,
                now,
            ),
        )
        .await
        .unwrap();
    // The same external id is the same person, whatever the email now; the role follows,
    // and, when the installation vouches, the email.
    let same = store
        .create_portal_link(
            &audit,
            portal_link(
                acme,
                key_of_acme,
                "code-0",
                "u-1",
                "grace@other.example",
                Role::Member,
                now,
            ),
        )
        .await
        .unwrap();
    assert_eq!(grace, same);
    assert_eq!(
        store
            .members(acme)
            .await
            .unwrap()
            .iter()
            .find(|m| m.user_id == grace)
            .unwrap()
            .email
            .as_str(),
        "grace@example.com",
        "an organization's key changes no email"
    );
    let mut vouched = portal_link(
        acme,
        key_of_acme,
        "code-2",
        "u-1",
        "grace@new.example",
        Role::Admin,
        now,
    );
    vouched.person.vouched = true;
    let again = store.create_portal_link(&audit, vouched).await.unwrap();
    assert_eq!(grace, again);
    let members = store.members(acme).await.unwrap();
    let member = members.iter().find(|m| m.user_id == grace).unwrap();
    assert_eq!(member.role, Role::Admin);
    assert_eq!(member.email.as_str(), "grace@new.example");
    // Another account's email, without vouching for it: refused, nothing changed.
    let taken = store
        .create_portal_link(
            &audit,
            portal_link(
                acme,
                key_of_acme,
                "code-3",
                "u-2",
                "ada@example.com",
                Role::Member,
                now,
            ),
        )
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict("person email"))),
        "{taken:?}"
    );
    // An organization's own key cannot pull another organization's person in.
    let (_, globex) = person(store, "bob@example.com").await;
    let key_of_globex = portal_key(store, globex).await;
    let claimed = store
        .create_portal_link(
            &audit,
            portal_link(
                globex,
                key_of_globex,
                "code-6",
                "u-1",
                "grace@evil.example",
                Role::Owner,
                now,
            ),
        )
        .await;
    assert!(
        matches!(claimed, Err(StoreError::Conflict("person elsewhere"))),
        "{claimed:?}"
    );
    let still = store.members(acme).await.unwrap();
    let grace_now = still.iter().find(|m| m.user_id == grace).unwrap();
    assert_eq!(grace_now.email.as_str(), "grace@new.example");
    // Vouched for (an admin key): the account becomes the platform's person.
    let mut vouched = portal_link(
        acme,
        key_of_acme,
        "code-4",
        "u-ada",
        "ada@example.com",
        Role::Owner,
        now,
    );
    vouched.person.vouched = true;
    assert_eq!(
        store.create_portal_link(&audit, vouched).await.unwrap(),
        ada
    );
    // Never without an owner.
    let mut lowered = portal_link(
        acme,
        key_of_acme,
        "code-5",
        "u-ada",
        "ada@example.com",
        Role::Member,
        now,
    );
    lowered.person.vouched = true;
    let refused = store.create_portal_link(&audit, lowered).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict("last owner"))),
        "{refused:?}"
    );

    // Once, and only while fresh.
    let opened = store
        .redeem_portal_link(&KeyDigest::of("code-1"), now)
        .await
        .unwrap()
        .expect("opens once");
    assert_eq!((opened.organization, opened.user_id), (acme, grace));
    assert_eq!(opened.session_seconds, 600);
    assert!(
        store
            .redeem_portal_link(&KeyDigest::of("code-1"), now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .redeem_portal_link(&KeyDigest::of("code-2"), now.plus_seconds(60))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        store
            .redeem_portal_link(&KeyDigest::of("never-made"), now)
            .await
            .unwrap()
            .is_none()
    );
    // A link of a key revoked since opens nothing.
    store
        .create_portal_link(
            &audit,
            portal_link(
                acme,
                key_of_acme,
                "code-9",
                "u-1",
                "grace@example.com",
                Role::Admin,
                now,
            ),
        )
        .await
        .unwrap();
    store
        .revoke_credential(&audit, acme, key_of_acme, now)
        .await
        .unwrap();
    assert!(
        store
            .redeem_portal_link(&KeyDigest::of("code-9"), now)
            .await
            .unwrap()
            .is_none(),
        "its key is revoked"
    );
}

pub async fn a_new_address_from_the_provider_spends_the_old_reset_links(store: &dyn Store) {
    let (ada, _) = person(store, "ada@example.com").await;
    let now = Timestamp::now();
    let audit = keyward_store::AuditContext::SYSTEM;
    let email = Email::parse("ada@example.com").unwrap();
    let message = keyward_store::NewEmail {
        id: uuid::Uuid::now_v7(),
        recipient: email.clone(),
        template: "password_reset".into(),
        params: serde_json::json!({}),
        created_at: now,
    };
    let digest = KeyDigest::of("reset-token");
    let queued = store
        .request_password_reset(&audit, &email, message, digest, now.plus_seconds(3600), 3)
        .await
        .unwrap();
    assert_eq!(queued, keyward_store::ResetRequest::Queued);
    assert_eq!(
        store.password_reset_email(&digest, now).await.unwrap(),
        Some(email.clone())
    );
    let sso = |address: &str| keyward_store::SsoPerson {
        subject: keyward_core::ExternalId::parse("sub-ada").unwrap(),
        email: Email::parse(address).unwrap(),
        email_verified: true,
        name: None,
    };
    // Linked by her verified address: her link still works.
    let linked = store
        .sign_in_with_provider(&audit, sso("ada@example.com"), None, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(linked.user_id, ada);
    assert!(
        store
            .password_reset_email(&digest, now)
            .await
            .unwrap()
            .is_some()
    );
    // A new verified address at the provider: the link sent to the old one is spent.
    let moved = store
        .sign_in_with_provider(&audit, sso("ada@new.example"), None, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.email.as_str(), "ada@new.example");
    assert!(
        store
            .password_reset_email(&digest, now)
            .await
            .unwrap()
            .is_none()
    );
}

/// A key with credits hands on no calls: checked in the writing transaction too, whatever a
/// node's cache believed.
pub async fn a_key_with_credits_adds_no_member_and_opens_no_portal_link(store: &dyn Store) {
    let (_, acme) = person(store, "ada@example.com").await;
    let (bob, _) = person(store, "bob@example.com").await;
    let mut new = crate::new_credential(
        acme,
        keyward_store::Creator::Host,
        None,
        "metered",
        crate::all_scopes(),
    );
    new.credits = Some(keyward_core::CreditSettings::new(10, None).unwrap());
    let key = store
        .insert_credential(&keyward_store::AuditContext::SYSTEM, new)
        .await
        .unwrap()
        .id;
    let audit = keyward_store::AuditContext {
        actor: keyward_store::Actor::Credential {
            id: key,
            hint: String::new(),
        },
        ..keyward_store::AuditContext::SYSTEM
    };
    let now = Timestamp::now();
    let link = portal_link(
        acme,
        key,
        "code-9",
        "u-9",
        "eve@example.com",
        Role::Member,
        now,
    );
    let opened = store.create_portal_link(&audit, link).await;
    assert!(
        matches!(opened, Err(StoreError::Invalid { .. })),
        "{opened:?}"
    );
    let added = store.add_member(&audit, acme, bob, Role::Member, now).await;
    assert!(
        matches!(added, Err(StoreError::Invalid { .. })),
        "{added:?}"
    );
    assert_eq!(
        store.members(acme).await.unwrap().len(),
        1,
        "only its owner"
    );
}

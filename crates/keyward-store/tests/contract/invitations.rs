use keyward_core::{Email, InvitationId, KeyDigest, OrganizationId, Role, Timestamp, UserId};
use keyward_store::{
    Actor, AuditContext, InvitationAnswer, InvitationKey, InvitationRefusal, InvitationStatus,
    Inviter, NewEmail, NewInvitation, NewOwner, Store, StoreError,
};

use crate::people::person;

fn by(user: UserId, email: &str) -> AuditContext {
    AuditContext {
        actor: Actor::User {
            id: user,
            email: email.to_owned(),
        },
        ..AuditContext::SYSTEM
    }
}

fn email(text: &str) -> Email {
    Email::parse(text).unwrap()
}

/// A link: its message (the token is derived from it elsewhere; here any digest does).
fn link(to: &str, token: &str, at: Timestamp) -> Option<(NewEmail, KeyDigest)> {
    let message = NewEmail {
        id: uuid::Uuid::now_v7(),
        recipient: email(to),
        template: "invitation".into(),
        params: serde_json::json!({}),
        created_at: at,
    };
    Some((message, KeyDigest::of(token)))
}

fn invitation(
    organization: OrganizationId,
    to: &str,
    role: Role,
    at: Timestamp,
    link: Option<(NewEmail, KeyDigest)>,
) -> NewInvitation {
    NewInvitation {
        id: InvitationId::generate(),
        organization_id: organization,
        email: email(to),
        role,
        created_at: at,
        expires_at: at.plus_seconds(7 * 86_400),
        link,
    }
}

fn new_account(to: &str) -> NewOwner {
    NewOwner::Create {
        id: UserId::generate(),
        email: email(to),
        password_hash: "$argon2id$x".into(),
    }
}

pub async fn invitations_are_open_once_per_address_and_answered_once(store: &dyn Store) {
    let (ada, acme) = person(store, "ada@example.com").await;
    let (bob, _) = person(store, "bob@example.com").await;
    let (carol, _) = person(store, "carol@example.com").await;
    let ada_did = by(ada, "ada@example.com");
    let now = Timestamp::now();

    let bobs = store
        .create_invitation(
            &ada_did,
            invitation(
                acme,
                "bob@example.com",
                Role::Member,
                now,
                link("bob@example.com", "t-bob", now),
            ),
        )
        .await
        .unwrap();
    assert_eq!(bobs.status, InvitationStatus::Pending);
    assert!(bobs.emailed);
    assert_eq!(
        bobs.invited_by,
        Inviter::Person {
            id: ada,
            email: email("ada@example.com")
        }
    );
    let again = store
        .create_invitation(
            &ada_did,
            invitation(acme, "bob@example.com", Role::Admin, now, None),
        )
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict("invitation"))),
        "{again:?}"
    );
    let member = store
        .create_invitation(
            &ada_did,
            invitation(acme, "ada@example.com", Role::Member, now, None),
        )
        .await;
    assert!(
        matches!(member, Err(StoreError::Conflict("member"))),
        "{member:?}"
    );

    let open = store
        .invitation_by_link(&KeyDigest::of("t-bob"), now)
        .await
        .unwrap()
        .expect("the link opens it");
    assert_eq!(open.invitation.id, bobs.id);
    assert!(open.account_exists);
    assert_eq!(open.organization_name, "ada@example.com's organization");
    assert_eq!(
        store
            .invitations_for(&email("bob@example.com"), now)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .invitation_by_link(&KeyDigest::of("t-other"), now)
            .await
            .unwrap()
            .is_none()
    );

    // Only the address's person answers; a new account cannot take a used address.
    let link_of_bob = || InvitationKey::Link(KeyDigest::of("t-bob"));
    let answer = |key, answer| store.answer_invitation(&AuditContext::SYSTEM, key, answer, now);
    let carols = answer(
        link_of_bob(),
        InvitationAnswer::Accept(NewOwner::Existing(carol)),
    )
    .await;
    assert_eq!(carols.unwrap(), Err(InvitationRefusal::NotYours));
    let declined = answer(link_of_bob(), InvitationAnswer::Decline(carol)).await;
    assert_eq!(declined.unwrap(), Err(InvitationRefusal::NotYours));
    let taken = answer(
        link_of_bob(),
        InvitationAnswer::Accept(new_account("bob@example.com")),
    )
    .await;
    assert_eq!(taken.unwrap(), Err(InvitationRefusal::AccountExists));
    let joined = answer(
        link_of_bob(),
        InvitationAnswer::Accept(NewOwner::Existing(bob)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        (joined.user_id, joined.organization, joined.role),
        (bob, acme, Role::Member)
    );
    let members = store.members(acme).await.unwrap();
    assert!(
        members
            .iter()
            .any(|m| m.user_id == bob && m.role == Role::Member)
    );
    let twice = answer(
        link_of_bob(),
        InvitationAnswer::Accept(NewOwner::Existing(bob)),
    )
    .await;
    assert_eq!(twice.unwrap(), Err(InvitationRefusal::Gone));
    assert!(
        store
            .invitation_by_link(&KeyDigest::of("t-bob"), now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.list_invitations(acme).await.unwrap().is_empty());
    let accepted = store.get_invitation(acme, bobs.id).await.unwrap().unwrap();
    assert_eq!(accepted.status, InvitationStatus::Accepted);

    // An expired invitation answers nothing, and gives way to a new one.
    let brief = NewInvitation {
        expires_at: now.plus_seconds(1),
        ..invitation(
            acme,
            "dan@example.com",
            Role::Member,
            now,
            link("dan@example.com", "t-dan", now),
        )
    };
    store.create_invitation(&ada_did, brief).await.unwrap();
    let later = now.plus_seconds(2);
    let late = store
        .answer_invitation(
            &AuditContext::SYSTEM,
            InvitationKey::Link(KeyDigest::of("t-dan")),
            InvitationAnswer::Accept(new_account("dan@example.com")),
            later,
        )
        .await
        .unwrap();
    assert_eq!(late, Err(InvitationRefusal::Gone));
    assert!(
        store
            .find_user_by_email(&email("dan@example.com"))
            .await
            .unwrap()
            .is_none()
    );
    let dans = store
        .create_invitation(
            &ada_did,
            invitation(
                acme,
                "dan@example.com",
                Role::Member,
                later,
                link("dan@example.com", "t-dan-2", later),
            ),
        )
        .await
        .unwrap();

    // A resend spends the link before (not within a minute of the last email); a cancel ends
    // the invitation.
    let soon = store
        .resend_invitation(
            &ada_did,
            acme,
            dans.id,
            later.plus_seconds(100),
            link("dan@example.com", "t-dan-x", later.plus_seconds(59)),
        )
        .await;
    assert!(
        matches!(
            soon,
            Err(StoreError::Throttled {
                retry_after_seconds: 1,
                ..
            })
        ),
        "{soon:?}"
    );
    let resent = store
        .resend_invitation(
            &ada_did,
            acme,
            dans.id,
            later.plus_seconds(100),
            link("dan@example.com", "t-dan-3", later.plus_seconds(60)),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resent.expires_at, later.plus_seconds(100));
    assert!(
        store
            .invitation_by_link(&KeyDigest::of("t-dan-2"), later)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .invitation_by_link(&KeyDigest::of("t-dan-3"), later)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .cancel_invitation(&ada_did, acme, dans.id, later)
            .await
            .unwrap()
    );
    assert!(
        !store
            .cancel_invitation(&ada_did, acme, dans.id, later)
            .await
            .unwrap()
    );
    assert!(
        store
            .resend_invitation(&ada_did, acme, dans.id, later, None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .invitation_by_link(&KeyDigest::of("t-dan-3"), later)
            .await
            .unwrap()
            .is_none()
    );

    // A person without an account joins with a new one; Carol declines hers.
    store
        .create_invitation(
            &ada_did,
            invitation(
                acme,
                "erin@example.com",
                Role::Admin,
                now,
                link("erin@example.com", "t-erin", now),
            ),
        )
        .await
        .unwrap();
    let erin = answer(
        InvitationKey::Link(KeyDigest::of("t-erin")),
        InvitationAnswer::Accept(new_account("erin@example.com")),
    )
    .await
    .unwrap()
    .unwrap();
    let erin_account = store
        .find_user_by_email(&email("erin@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(erin_account.id, erin.user_id);
    assert!(
        store
            .members(acme)
            .await
            .unwrap()
            .iter()
            .any(|m| m.user_id == erin.user_id && m.role == Role::Admin)
    );
    let carols = store
        .create_invitation(
            &ada_did,
            invitation(acme, "carol@example.com", Role::Member, now, None),
        )
        .await
        .unwrap();
    assert!(!carols.emailed);
    answer(
        InvitationKey::Id(carols.id),
        InvitationAnswer::Decline(carol),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        store
            .get_invitation(acme, carols.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        InvitationStatus::Declined
    );
    assert!(
        !store
            .members(acme)
            .await
            .unwrap()
            .iter()
            .any(|m| m.user_id == carol)
    );

    // Whoever invited must still be able to give the role when it is accepted: Erin (an
    // admin) invites Fay as an admin, then Erin is lowered to member.
    store
        .create_invitation(
            &by(erin.user_id, "erin@example.com"),
            invitation(
                acme,
                "fay@example.com",
                Role::Admin,
                now,
                link("fay@example.com", "t-fay", now),
            ),
        )
        .await
        .unwrap();
    store
        .change_member_role(&ada_did, acme, erin.user_id, Role::Admin, Role::Member)
        .await
        .unwrap();
    let fay = answer(
        InvitationKey::Link(KeyDigest::of("t-fay")),
        InvitationAnswer::Accept(new_account("fay@example.com")),
    )
    .await;
    assert_eq!(fay.unwrap(), Err(InvitationRefusal::InviterMayNot));
    assert!(
        store
            .find_user_by_email(&email("fay@example.com"))
            .await
            .unwrap()
            .is_none()
    );

    // Every emailed link was queued with its invitation: Bob's, Dan's three, Erin's, Fay's.
    let queued = store
        .claim_emails(later.plus_seconds(100), 60, 100)
        .await
        .unwrap();
    assert_eq!(
        queued.iter().filter(|m| m.template == "invitation").count(),
        6
    );
}

pub async fn invitation_emails_are_limited_per_address(store: &dyn Store) {
    let now = Timestamp::now();
    let mut organizations = Vec::new();
    for n in 0..6 {
        organizations.push(person(store, &format!("owner{n}@example.com")).await);
    }
    // Five organizations may email one address in an hour; the sixth waits, and writes nothing.
    for (n, (owner, organization)) in organizations.iter().enumerate() {
        let made = store
            .create_invitation(
                &by(*owner, &format!("owner{n}@example.com")),
                invitation(
                    *organization,
                    "hal@example.com",
                    Role::Member,
                    now,
                    link("hal@example.com", &format!("t-hal-{n}"), now),
                ),
            )
            .await;
        if n < 5 {
            assert!(made.is_ok(), "{made:?}");
        } else {
            assert!(
                matches!(made, Err(StoreError::Throttled { .. })),
                "{made:?}"
            );
            assert!(
                store
                    .list_invitations(*organization)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }
    // Without email, nothing is sent and nothing is limited.
    let (owner, organization) = organizations[5];
    store
        .create_invitation(
            &by(owner, "owner5@example.com"),
            invitation(organization, "hal@example.com", Role::Member, now, None),
        )
        .await
        .unwrap();
    // An hour later, the address may be written to again.
    let (owner, organization) = organizations[0];
    store
        .cancel_invitation(
            &AuditContext::SYSTEM,
            organization,
            store.list_invitations(organization).await.unwrap()[0].id,
            now,
        )
        .await
        .unwrap();
    let later = now.plus_seconds(3_601);
    store
        .create_invitation(
            &by(owner, "owner0@example.com"),
            invitation(
                organization,
                "hal@example.com",
                Role::Member,
                later,
                link("hal@example.com", "t-hal-later", later),
            ),
        )
        .await
        .unwrap();
}

pub async fn concurrent_invitations_and_answers_are_decided_once(store: &dyn Store) {
    let (ada, acme) = person(store, "ada@example.com").await;
    let ada_did = by(ada, "ada@example.com");
    let now = Timestamp::now();
    let invite = || {
        store.create_invitation(
            &ada_did,
            invitation(
                acme,
                "gus@example.com",
                Role::Member,
                now,
                link("gus@example.com", "t-gus", now),
            ),
        )
    };
    let (a, b, c, d) = tokio::join!(invite(), invite(), invite(), invite());
    let created: Vec<_> = [a, b, c, d].into_iter().collect();
    assert_eq!(
        created.iter().filter(|r| r.is_ok()).count(),
        1,
        "{created:?}"
    );
    assert!(
        created
            .iter()
            .all(|r| matches!(r, Ok(_) | Err(StoreError::Conflict("invitation")))),
        "{created:?}"
    );

    let accept = || {
        store.answer_invitation(
            &AuditContext::SYSTEM,
            InvitationKey::Link(KeyDigest::of("t-gus")),
            InvitationAnswer::Accept(new_account("gus@example.com")),
            now,
        )
    };
    let (a, b, c, d) = tokio::join!(accept(), accept(), accept(), accept());
    let answers = [a, b, c, d];
    assert_eq!(
        answers.iter().filter(|r| matches!(r, Ok(Ok(_)))).count(),
        1,
        "{answers:?}"
    );
    assert!(
        answers.iter().all(|r| matches!(
            r,
            Ok(Ok(_))
                | Ok(Err(
                    InvitationRefusal::Gone | InvitationRefusal::AccountExists
                ))
                | Err(StoreError::Conflict(_))
        )),
        "{answers:?}"
    );
    let members = store.members(acme).await.unwrap();
    assert_eq!(members.len(), 2);
}

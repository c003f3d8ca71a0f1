//! Invitations: a person asked to join an organization, who joins only by accepting.

use keyward_core::{
    CredentialId, Email, InvitationId, KeyDigest, OrganizationId, Role, Timestamp, UserId,
};

use super::{Columns, Query, Read, Write, email, exists, locking, organizations};
use crate::decode::{kind, role, timestamp};
use crate::error::conflict_on_unique;
use crate::{
    Actor, InvitationAnswer, InvitationKey, InvitationRecord, InvitationRefusal, InvitationStatus,
    Inviter, Joined, NewEmail, NewInvitation, NewOwner, OpenInvitation, StoreError,
};

/// The columns [`decode`] reads, with the inviter's email or credential kind.
macro_rules! select_invitations {
    ($($tail:expr),+) => {
        concat!(
            "SELECT i.id, i.organization_id, i.email, i.role, i.created_at, i.expires_at, \
             i.status, i.invited_by_user, i.invited_by_credential, \
             CAST(CASE WHEN i.token_sha256 IS NULL THEN 0 ELSE 1 END AS BIGINT) AS emailed, \
             u.email AS inviter_email, c.kind AS inviter_kind \
             FROM invitations i LEFT JOIN users u ON u.id = i.invited_by_user \
             LEFT JOIN credentials c ON c.id = i.invited_by_credential ",
            $($tail),+
        )
    };
}

fn status(stored: &str) -> Result<InvitationStatus, StoreError> {
    Ok(match stored {
        "pending" => InvitationStatus::Pending,
        "accepted" => InvitationStatus::Accepted,
        "declined" => InvitationStatus::Declined,
        "cancelled" => InvitationStatus::Cancelled,
        _ => return Err(crate::decode::corrupt("invitation status")),
    })
}

fn decode(row: &dyn Columns) -> Result<InvitationRecord, StoreError> {
    let invited_by = match (
        row.opt_uuid("invited_by_user")?,
        row.opt_text("inviter_email")?,
    ) {
        (Some(id), Some(email)) => Inviter::Person {
            id: UserId::from_uuid(id),
            email: Email::from_trusted(email),
        },
        _ => match (
            row.opt_uuid("invited_by_credential")?,
            row.opt_text("inviter_kind")?,
        ) {
            (Some(id), Some(stored)) => {
                Inviter::Credential(CredentialId::from_uuid(id, kind(&stored)?))
            }
            _ => Inviter::Keyward,
        },
    };
    Ok(InvitationRecord {
        id: InvitationId::from_uuid(row.uuid("id")?),
        organization_id: OrganizationId::from_uuid(row.uuid("organization_id")?),
        email: Email::from_trusted(row.text("email")?),
        role: role(&row.text("role")?)?,
        invited_by,
        created_at: timestamp(row.int("created_at")?),
        expires_at: timestamp(row.int("expires_at")?),
        emailed: row.int("emailed")? == 1,
        status: status(&row.text("status")?)?,
    })
}

pub(crate) async fn get(
    db: &mut impl Read,
    organization: OrganizationId,
    id: InvitationId,
) -> Result<Option<InvitationRecord>, StoreError> {
    let query = Query::new(select_invitations!(
        "WHERE i.organization_id = $1 AND i.id = $2"
    ))
    .bind(organization.as_uuid())
    .bind(id.as_uuid());
    db.optional(query, decode).await
}

/// The open invitations (expired ones too, until resent or cancelled), newest first.
pub(crate) async fn list(
    db: &mut impl Read,
    organization: OrganizationId,
) -> Result<Vec<InvitationRecord>, StoreError> {
    let query = Query::new(select_invitations!(
        "WHERE i.organization_id = $1 AND i.status = 'pending' ORDER BY i.created_at DESC, i.id DESC"
    ))
    .bind(organization.as_uuid());
    db.all(query, decode).await
}

/// Gives the invitation its link (the digest of the token) and queues the message that
/// carries it, within the limits on invitation emails: one a minute per invitation,
/// [`INVITATION_EMAILS_PER_ADDRESS_PER_HOUR`] to one address from every organization, and
/// [`INVITATIONS_PER_ORGANIZATION_PER_DAY`] new ones from one organization (whose row the
/// caller has locked, so that its count is exact).
async fn attach_link(
    tx: &mut impl Write,
    organization: OrganizationId,
    id: InvitationId,
    link: &Option<(NewEmail, KeyDigest)>,
) -> Result<(), StoreError> {
    let Some((message, digest)) = link else {
        return Ok(());
    };
    let now = message.created_at.unix_seconds();
    let throttled = |message, retry_after_seconds| {
        Err(StoreError::Throttled {
            message,
            retry_after_seconds,
        })
    };
    let last = Query::new("SELECT last_sent_at FROM invitations WHERE id = $1").bind(id.as_uuid());
    let last_sent = tx
        .optional(last, |row| row.opt_int("last_sent_at"))
        .await?
        .flatten();
    if let Some(last) = last_sent
        && now - last < INVITATION_RESEND_SECONDS
    {
        return throttled(
            "this invitation was emailed less than a minute ago",
            u64::try_from(INVITATION_RESEND_SECONDS - (now - last)).unwrap_or(1),
        );
    }
    let to_address = Query::new(
        "SELECT COUNT(*) AS n FROM email_outbox \
         WHERE recipient = $1 AND template = 'invitation' AND created_at > $2",
    )
    .bind(message.recipient.as_str())
    .bind(now - 3_600);
    if tx
        .optional(to_address, |row| row.int("n"))
        .await?
        .unwrap_or(0)
        >= INVITATION_EMAILS_PER_ADDRESS_PER_HOUR
    {
        return throttled(
            "this address was sent as many invitations as it may be in an hour",
            3_600,
        );
    }
    let by_organization = Query::new(
        "SELECT COUNT(*) AS n FROM invitations WHERE organization_id = $1 AND created_at > $2",
    )
    .bind(organization.as_uuid())
    .bind(now - 86_400);
    if tx
        .optional(by_organization, |row| row.int("n"))
        .await?
        .unwrap_or(0)
        > INVITATIONS_PER_ORGANIZATION_PER_DAY
    {
        return throttled(
            "the organization made as many invitations as it may in a day",
            86_400,
        );
    }
    let query =
        Query::new("UPDATE invitations SET token_sha256 = $2, last_sent_at = $3 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(digest)
            .bind(now);
    tx.execute(query).await?;
    email::enqueue(tx, message).await
}

/// Seconds between two emails of one invitation.
pub const INVITATION_RESEND_SECONDS: i64 = 60;
/// Invitation emails one address may receive in an hour, from every organization together.
pub const INVITATION_EMAILS_PER_ADDRESS_PER_HOUR: i64 = 5;
/// Emailed invitations one organization may make in a day.
pub const INVITATIONS_PER_ORGANIZATION_PER_DAY: i64 = 200;

/// Records an invitation by the actor of `by`: `Conflict("member")` when the address is a
/// member already, `Conflict("invitation")` when an unexpired one is open for it (an expired
/// one gives way).
pub(crate) async fn insert(
    tx: &mut impl Write,
    by: &Actor,
    new: &NewInvitation,
) -> Result<InvitationRecord, StoreError> {
    let member = Query::new(
        "SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = $1 AND u.email = $2",
    )
    .bind(new.organization_id.as_uuid())
    .bind(new.email.as_str());
    if tx.optional(member, exists).await?.is_some() {
        return Err(StoreError::Conflict("member"));
    }
    let lapsed = Query::new(
        "UPDATE invitations SET status = 'cancelled', closed_at = $3 \
         WHERE organization_id = $1 AND email = $2 AND status = 'pending' AND expires_at <= $3",
    )
    .bind(new.organization_id.as_uuid())
    .bind(new.email.as_str())
    .bind(new.created_at.unix_seconds());
    tx.execute(lapsed).await?;
    let (user, credential) = inviter_columns(by);
    let insert = Query::new(
        "INSERT INTO invitations (id, organization_id, email, role, invited_by_user, \
         invited_by_credential, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new.id.as_uuid())
    .bind(new.organization_id.as_uuid())
    .bind(new.email.as_str())
    .bind(new.role.as_str())
    .bind(user)
    .bind(credential)
    .bind(new.created_at.unix_seconds())
    .bind(new.expires_at.unix_seconds());
    tx.execute(insert)
        .await
        .map_err(conflict_on_unique("invitation"))?;
    attach_link(tx, new.organization_id, new.id, &new.link).await?;
    get(tx, new.organization_id, new.id)
        .await?
        .ok_or(StoreError::NotFound("invitation"))
}

/// Closes an open invitation as cancelled; `false` if it was not open.
pub(crate) async fn cancel(
    tx: &mut impl Write,
    organization: OrganizationId,
    id: InvitationId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let query = Query::new(
        "UPDATE invitations SET status = 'cancelled', closed_at = $3 \
         WHERE organization_id = $1 AND id = $2 AND status = 'pending'",
    )
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .bind(now.unix_seconds());
    Ok(tx.execute(query).await? == 1)
}

/// Gives an open invitation a new expiry and a new link (the old link stops working), made
/// by the actor of `by` from now on (whose right to give the role acceptance checks);
/// `None` if it was not open.
pub(crate) async fn resend(
    tx: &mut impl Write,
    by: &Actor,
    organization: OrganizationId,
    id: InvitationId,
    expires_at: Timestamp,
    link: &Option<(NewEmail, KeyDigest)>,
) -> Result<Option<InvitationRecord>, StoreError> {
    let (user, credential) = inviter_columns(by);
    let query = Query::new(
        "UPDATE invitations SET expires_at = $3, token_sha256 = NULL, invited_by_user = $4, \
         invited_by_credential = $5 \
         WHERE organization_id = $1 AND id = $2 AND status = 'pending'",
    )
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .bind(expires_at.unix_seconds())
    .bind(user)
    .bind(credential);
    if tx.execute(query).await? != 1 {
        return Ok(None);
    }
    attach_link(tx, organization, id, link).await?;
    get(tx, organization, id).await
}

/// The `invited_by_user` and `invited_by_credential` of an invitation `by` makes.
fn inviter_columns(by: &Actor) -> (Option<uuid::Uuid>, Option<uuid::Uuid>) {
    match by {
        Actor::User { id, .. } => (Some(id.as_uuid()), None),
        Actor::Credential { id, .. } => (None, Some(id.as_uuid())),
        Actor::System => (None, None),
    }
}

fn open(row: &dyn Columns) -> Result<OpenInvitation, StoreError> {
    Ok(OpenInvitation {
        invitation: decode(row)?,
        organization_name: row.text("organization_name")?,
        account_exists: row.int("account_exists")? == 1,
    })
}

/// The columns [`open`] reads: open, unexpired invitations (`WHERE` and `$2`, the time,
/// given) of live organizations.
macro_rules! select_open {
    ($($tail:expr),+) => {
        concat!(
            "SELECT x.*, o.name AS organization_name, CAST(CASE WHEN EXISTS \
             (SELECT 1 FROM users a WHERE a.email = x.email) THEN 1 ELSE 0 END AS BIGINT) \
             AS account_exists \
             FROM (",
            select_invitations!($($tail),+),
            " AND i.status = 'pending' AND i.expires_at > $2) x \
             JOIN organizations o ON o.id = x.organization_id \
             WHERE o.deleted_at IS NULL AND o.suspended_at IS NULL"
        )
    };
}

/// The open invitation a link is for.
pub(crate) async fn by_link(
    db: &mut impl Read,
    digest: &KeyDigest,
    now: Timestamp,
) -> Result<Option<OpenInvitation>, StoreError> {
    let query = Query::new(select_open!("WHERE i.token_sha256 = $1"))
        .bind(digest)
        .bind(now.unix_seconds());
    db.optional(query, open).await
}

/// The open invitations for an address, oldest first.
pub(crate) async fn for_email(
    db: &mut impl Read,
    address: &Email,
    now: Timestamp,
) -> Result<Vec<OpenInvitation>, StoreError> {
    let query = Query::new(concat!(
        select_open!("WHERE i.email = $1"),
        " ORDER BY x.created_at, x.id"
    ))
    .bind(address.as_str())
    .bind(now.unix_seconds());
    db.all(query, open).await
}

/// The open invitation an answer is for, locked until the transaction ends.
async fn lock_open(
    tx: &mut impl Write,
    key: &InvitationKey,
) -> Result<Option<(InvitationRecord, Option<uuid::Uuid>, Option<uuid::Uuid>)>, StoreError> {
    fn row(
        row: &dyn Columns,
    ) -> Result<(InvitationRecord, Option<uuid::Uuid>, Option<uuid::Uuid>), StoreError> {
        Ok((
            decode(row)?,
            row.opt_uuid("invited_by_user")?,
            row.opt_uuid("invited_by_credential")?,
        ))
    }
    // The row is locked alone (PostgreSQL refuses FOR UPDATE beside outer joins), then read.
    let (lock, id) = match key {
        InvitationKey::Link(digest) => (
            locking!(
                "FOR UPDATE",
                "SELECT id FROM invitations WHERE token_sha256 = $1 AND status = 'pending'"
            )
            .bind(digest),
            None,
        ),
        InvitationKey::Id(id) => (
            locking!(
                "FOR UPDATE",
                "SELECT id FROM invitations WHERE id = $1 AND status = 'pending'"
            )
            .bind(id.as_uuid()),
            Some(*id),
        ),
    };
    let Some(found) = tx.optional(lock, |row| row.uuid("id")).await? else {
        return Ok(None);
    };
    let id = id.unwrap_or(InvitationId::from_uuid(found));
    let query = Query::new(select_invitations!("WHERE i.id = $1")).bind(id.as_uuid());
    tx.optional(query, row).await
}

/// Whether whoever invited may still give the role: a person still a member whose role may
/// add it, a credential that still may add members, or Keyward itself.
async fn inviter_may(
    tx: &mut impl Write,
    invitation: &InvitationRecord,
    user: Option<uuid::Uuid>,
    credential: Option<uuid::Uuid>,
) -> Result<bool, StoreError> {
    if let Some(user) = user {
        // Shared locks: a role change or a revocation under way finishes first, and none
        // can commit until this acceptance has.
        let query = locking!(
            "FOR SHARE",
            "SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2"
        )
        .bind(invitation.organization_id.as_uuid())
        .bind(user);
        let current = tx.optional(query, |row| role(&row.text("role")?)).await?;
        return Ok(current.is_some_and(|r: Role| r.may_assign(None, Some(invitation.role))));
    }
    if let Some(credential) = credential {
        // What a key needs to add anyone at all (`services::members`), still true: it is
        // live, does not expire or rotate away, is not limited to networks, and has no
        // credits. (Its scopes never change.)
        let query = locking!(
            "FOR SHARE",
            "SELECT 1 FROM credentials WHERE id = $1 AND revoked_at IS NULL \
             AND expires_at IS NULL AND rotation_ends_at IS NULL AND allowed_cidrs IS NULL \
             AND NOT EXISTS (SELECT 1 FROM credit_balances \
             WHERE credential_id = credentials.id AND remaining IS NOT NULL) \
             AND NOT EXISTS (SELECT 1 FROM identity_limits \
             WHERE identity_organization_id = credentials.organization_id \
             AND identity_external_id = credentials.external_id)"
        )
        .bind(credential);
        return Ok(tx.optional(query, exists).await?.is_some());
    }
    Ok(true)
}

/// Answers an open invitation, every rule checked in this transaction: it is unexpired, the
/// person's email is its email, the organization is live, the inviter may still give the
/// role, and a new account's email is free. Refusals write nothing.
pub(crate) async fn answer(
    tx: &mut impl Write,
    key: &InvitationKey,
    answer: &InvitationAnswer,
    now: Timestamp,
) -> Result<Result<(InvitationRecord, Joined), InvitationRefusal>, StoreError> {
    let Some((invitation, user, credential)) = lock_open(tx, key).await? else {
        return Ok(Err(InvitationRefusal::Gone));
    };
    if invitation.expires_at <= now {
        return Ok(Err(InvitationRefusal::Gone));
    }
    let address =
        |id: UserId| Query::new("SELECT email FROM users WHERE id = $1").bind(id.as_uuid());
    let email_of = |row: &dyn Columns| Ok(Email::from_trusted(row.text("email")?));
    let person = match answer {
        InvitationAnswer::Decline(id) | InvitationAnswer::Accept(NewOwner::Existing(id)) => {
            let email = tx.optional(address(*id), email_of).await?;
            if email.as_ref() != Some(&invitation.email) {
                return Ok(Err(InvitationRefusal::NotYours));
            }
            *id
        }
        InvitationAnswer::Accept(
            NewOwner::Create { id, email, .. } | NewOwner::Provision { id, email, .. },
        ) => {
            if *email != invitation.email {
                return Ok(Err(InvitationRefusal::NotYours));
            }
            let taken = Query::new("SELECT 1 FROM users WHERE email = $1").bind(email.as_str());
            if tx.optional(taken, exists).await?.is_some() {
                return Ok(Err(InvitationRefusal::AccountExists));
            }
            *id
        }
    };
    let mut joined = Joined {
        user_id: person,
        organization: invitation.organization_id,
        role: invitation.role,
        added: true,
    };
    if let InvitationAnswer::Decline(_) = answer {
        close(tx, &invitation, "declined", person, now).await?;
        return Ok(Ok((invitation, joined)));
    }
    match organizations::active_policy(tx, invitation.organization_id).await {
        Ok(_) => {}
        Err(StoreError::NotFound(_) | StoreError::Suspended) => {
            return Ok(Err(InvitationRefusal::OrganizationGone));
        }
        Err(other) => return Err(other),
    }
    if !inviter_may(tx, &invitation, user, credential).await? {
        return Ok(Err(InvitationRefusal::InviterMayNot));
    }
    if let InvitationAnswer::Accept(new) = answer {
        organizations::insert_person(tx, new, now).await?;
    }
    // Joined meanwhile some other way: the invitation is answered all the same.
    let member =
        Query::new("SELECT 1 FROM memberships WHERE organization_id = $1 AND user_id = $2")
            .bind(invitation.organization_id.as_uuid())
            .bind(person.as_uuid());
    if tx.optional(member, exists).await?.is_some() {
        close(tx, &invitation, "accepted", person, now).await?;
        joined.added = false;
        return Ok(Ok((invitation, joined)));
    }
    organizations::add_member(tx, invitation.organization_id, person, invitation.role, now).await?;
    close(tx, &invitation, "accepted", person, now).await?;
    Ok(Ok((invitation, joined)))
}

async fn close(
    tx: &mut impl Write,
    invitation: &InvitationRecord,
    status: &'static str,
    by: UserId,
    now: Timestamp,
) -> Result<(), StoreError> {
    let query = Query::new(
        "UPDATE invitations SET status = $2, closed_at = $3, closed_by_user = $4 WHERE id = $1",
    )
    .bind(invitation.id.as_uuid())
    .bind(status)
    .bind(now.unix_seconds())
    .bind(by.as_uuid());
    tx.execute(query).await?;
    Ok(())
}

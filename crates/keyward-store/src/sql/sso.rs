//! Single sign-on: the person an OpenID provider vouches for, and the memberships its
//! organization claim gives.

use keyward_core::{Email, ExternalId, OrganizationId, Role, Timestamp, UserId};

use super::{Columns, Query, Write, locking, organizations, portal};
use crate::{SsoPerson, SsoRefusal, StoreError};

fn found(row: &dyn Columns) -> Result<(UserId, Email, Option<String>), StoreError> {
    Ok((
        UserId::from_uuid(row.uuid("id")?),
        Email::from_trusted(row.text("email")?),
        row.opt_text("external_id")?,
    ))
}

/// The person with the provider's subject; else the account with a verified email that has
/// no external id yet (linked); else, with a verified email, a new person without a password.
pub(crate) async fn person(
    tx: &mut impl Write,
    person: &SsoPerson,
    at: Timestamp,
) -> Result<Result<(UserId, Email), SsoRefusal>, StoreError> {
    let by_subject = || {
        locking!(
            "FOR UPDATE",
            "SELECT id, email, external_id FROM users WHERE external_id = $1"
        )
        .bind(person.subject.as_str())
    };
    if let Some((id, email, _)) = tx.optional(by_subject(), found).await? {
        // A verified new address moves with them, unless another account has it.
        if email != person.email && person.email_verified {
            let query = Query::new(
                "UPDATE users SET email = $2 WHERE id = $1 \
                 AND NOT EXISTS (SELECT 1 FROM users WHERE email = $2)",
            )
            .bind(id.as_uuid())
            .bind(person.email.as_str());
            if tx.execute(query).await? == 1 {
                // Reset links went to the old address: they open nothing any more.
                let spend = Query::new(
                    "UPDATE password_resets SET used_at = $2 \
                     WHERE user_id = $1 AND used_at IS NULL",
                )
                .bind(id.as_uuid())
                .bind(at.unix_seconds());
                tx.execute(spend).await?;
                return Ok(Ok((id, person.email.clone())));
            }
        }
        return Ok(Ok((id, email)));
    }
    let by_email = locking!(
        "FOR UPDATE",
        "SELECT id, email, external_id FROM users WHERE email = $1"
    )
    .bind(person.email.as_str());
    if let Some((id, email, external_id)) = tx.optional(by_email, found).await? {
        match external_id {
            // Made by a concurrent first sign-in of the same person, meanwhile.
            Some(external_id) if external_id == person.subject.as_str() => {
                return Ok(Ok((id, email)));
            }
            Some(_) => return Ok(Err(SsoRefusal::EmailTaken)),
            None => {}
        }
        if !person.email_verified {
            return Ok(Err(SsoRefusal::EmailUnverified));
        }
        let query = Query::new("UPDATE users SET external_id = $2 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(person.subject.as_str());
        tx.execute(query).await?;
        return Ok(Ok((id, email)));
    }
    // A new account takes only an address the provider vouches for: one that is not
    // verified could be someone else's, who would then find it taken.
    if !person.email_verified {
        return Ok(Err(SsoRefusal::EmailUnverified));
    }
    portal::insert_unless_taken(tx, &person.email, &person.subject, person.name.as_ref(), at)
        .await?;
    match tx.optional(by_subject(), found).await? {
        Some((id, email, _)) => Ok(Ok((id, email))),
        // A concurrent sign-up took the email meanwhile.
        None => Ok(Err(SsoRefusal::EmailTaken)),
    }
}

/// What the claim changed, for the audit log: `(organization, role before, role after)`,
/// `None` for not a member.
pub(crate) type MembershipEvent = (OrganizationId, Option<Role>, Option<Role>);

/// Makes the person's provider-given memberships those `claimed` names (organizations by
/// external id, unknown ones skipped): added or moved to the claimed role, marked as the
/// provider's, and the provider's others removed. The last owner of an organization keeps
/// their place and role. Returns the claimed organizations found, in order, and the changes.
pub(crate) async fn sync_memberships(
    tx: &mut impl Write,
    user: UserId,
    claimed: &[(ExternalId, Role)],
    at: Timestamp,
) -> Result<(Vec<OrganizationId>, Vec<MembershipEvent>), StoreError> {
    let mut found = Vec::new();
    let mut events = Vec::new();
    for (external_id, role) in claimed {
        let Some(organization) = organizations::find_by_external_id(tx, external_id).await? else {
            continue;
        };
        let id = organization.id;
        if found.contains(&id) {
            continue;
        }
        found.push(id);
        match portal::set_role(tx, id, user, *role, at).await {
            Ok(before) => events.push((id, before, Some(*role))),
            // The last owner stays one, whatever the claim says.
            Err(StoreError::Conflict(_)) => {}
            Err(other) => return Err(other),
        }
        let mark = Query::new(
            "UPDATE memberships SET from_provider = 1 WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(id.as_uuid())
        .bind(user.as_uuid());
        tx.execute(mark).await?;
    }
    let query = Query::new(
        "SELECT organization_id, role FROM memberships WHERE user_id = $1 AND from_provider = 1",
    )
    .bind(user.as_uuid());
    let given = tx
        .all(query, |row| {
            Ok((
                OrganizationId::from_uuid(row.uuid("organization_id")?),
                crate::decode::role(&row.text("role")?)?,
            ))
        })
        .await?;
    for (organization, role) in given {
        if found.contains(&organization) {
            continue;
        }
        if organizations::change_role(tx, organization, user, role, None).await?
            == crate::MembershipChange::Done
        {
            events.push((organization, Some(role), None));
        }
    }
    Ok((found, events))
}

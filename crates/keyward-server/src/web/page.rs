//! What every dashboard page shares: the layout around it, how dates are shown, forms' errors,
//! the confirmation page, and the project a page's path names.

use askama::Template;
use axum::http::StatusCode;
use keyward_core::{Role, Timestamp};

use super::response::WebError;
use super::session::Person;
use crate::AppState;
use crate::field_error::FieldError;
use crate::services::ServiceError;

/// One organization in the header's switcher.
pub struct OrganizationOption {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

/// The signed-in person, their organizations and the CSRF token, for the page header.
pub struct Layout {
    pub email: String,
    pub role: Role,
    pub organizations: Vec<OrganizationOption>,
    pub csrf_token: String,
    /// Which navigation entry is current: `keys`, `projects`, `tokens`, `members` or `audit`.
    pub section: &'static str,
    /// For owners: credentials reported exposed in the last 30 days.
    pub exposed: u64,
    /// The platform suspended the organization: everything is read-only until it resumes it.
    pub suspended: bool,
    /// The installation's name, colour and logo.
    pub branding: std::sync::Arc<crate::branding::Branding>,
    /// In a portal session: its pages and the way back to the platform's console.
    pub portal: Option<super::session::PortalView>,
}

impl Layout {
    pub async fn new(
        state: &AppState,
        person: &Person,
        section: &'static str,
    ) -> Result<Self, WebError> {
        let current = person.membership.organization_id;
        let organizations = state
            .store
            .memberships_of(person.user_id)
            .await?
            .into_iter()
            .map(|m| OrganizationOption {
                id: m.organization_id.to_string(),
                name: m.organization_name.to_string(),
                selected: m.organization_id == current,
            })
            .collect();
        // Owners see a banner while a key was found exposed in the last 30 days.
        let exposed = if person.membership.role == Role::Owner {
            let since = state.config.clock.now().plus_seconds(-30 * 86_400);
            state.store.count_exposed(current, since).await?
        } else {
            0
        };
        let suspended = state
            .store
            .get_organization(current)
            .await?
            .is_some_and(|organization| organization.suspended_at.is_some());
        Ok(Self {
            branding: state.config.branding.clone(),
            portal: person.portal.clone(),
            suspended,
            email: person.email.to_string(),
            role: person.membership.role,
            organizations,
            csrf_token: person.csrf_token.clone(),
            section,
            exposed,
        })
    }

    /// `aria-current` for the navigation entry `name`.
    pub fn current(&self, name: &str) -> &'static str {
        if self.section == name {
            "page"
        } else {
            "false"
        }
    }

    /// Whether the navigation shows the page `name` (`api_keys`, `projects`, `policy` …): in
    /// a portal session, only its own pages.
    pub fn shows(&self, name: &str) -> bool {
        match &self.portal {
            None => true,
            Some(portal) => crate::portal::PortalPage::parse(name)
                .is_some_and(|page| portal.pages.contains(page)),
        }
    }

    pub fn is_owner(&self) -> bool {
        self.role == Role::Owner
    }

    pub fn manages_members(&self) -> bool {
        self.role.manages_members()
    }

    pub fn role_name(&self) -> &'static str {
        self.role.as_str()
    }
}

/// A time for a table cell: UTC text that the page's script turns into the reader's own
/// timezone, with the exact UTC time on hover.
pub struct DateCell {
    pub iso: String,
    pub text: String,
}

impl DateCell {
    pub fn new(at: Timestamp) -> Self {
        let iso = at.to_string();
        // `2026-11-27T07:24:06Z` → `2026-11-27 07:24 UTC`
        let text = format!("{} {} UTC", &iso[..10], &iso[11..16]);
        Self { iso, text }
    }
}

/// Field errors of a form, shown next to their fields.
#[derive(Default)]
pub struct FormErrors(pub Vec<FieldError>);

impl FormErrors {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    pub fn push(&mut self, field: &'static str, message: impl ToString) {
        self.0.push(FieldError::new(field, message));
    }

    /// Takes a service's refusal that belongs beside a field (invalid values, a taken name,
    /// a role that cannot do this); anything else is the page's error.
    pub fn absorb(&mut self, error: ServiceError) -> Result<(), WebError> {
        match error {
            ServiceError::Invalid(fields) => self.0.extend(fields),
            ServiceError::Conflict(conflict) if conflict.field().is_some() => {
                self.push(conflict.field().unwrap_or("form"), conflict);
            }
            ServiceError::Forbidden {
                field: Some(field),
                message,
            } => self.push(field, message),
            ServiceError::CannotGrant { scope } => {
                self.push("scopes", format!("your role cannot grant {scope}"));
            }
            other => return Err(other.into()),
        }
        Ok(())
    }

    /// 200 for a fresh form, 422 for one sent back with errors.
    pub fn status(&self) -> StatusCode {
        if self.0.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        }
    }
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub layout: Layout,
    pub title: String,
    pub message: String,
    pub details: Vec<String>,
    pub action: String,
    pub button: String,
    pub cancel_url: String,
}

/// A live project of the person's organization.
pub async fn project_of(
    state: &AppState,
    person: &Person,
    raw: &str,
) -> Result<keyward_store::ProjectRecord, WebError> {
    let id = keyward_core::ProjectId::parse(raw).map_err(|_| WebError::not_found("project"))?;
    Ok(crate::services::projects::get(state, &person.caller(state), id).await?)
}

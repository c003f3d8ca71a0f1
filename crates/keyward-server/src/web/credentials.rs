//! Settings > API Keys and Settings > Project > Tokens: the same table, create form, "shown
//! once" page and revoke confirmation, for the organization's keys or one project's tokens.
//! Creating and revoking go through `crate::services::credentials`, the API's own code path.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::{
    CredentialId, CredentialKind, CredentialStatus, KeyDigest, Networks, OrganizationId, ProjectId,
    ScopeCatalog, ScopeSet, Timestamp,
};
use keyward_store::{CredentialChanges, CredentialFilter, Page, ProjectRecord};
use serde::Deserialize;

use super::form::FormData;
use super::page::{DateCell, FormErrors, Layout, WebError, render};
use super::session::Person;
use crate::AppState;
use crate::pagination::page_from;
use crate::services::credentials::{
    self, CredentialEntry, CredentialInput, check_expiry, parse_name, parse_scopes,
};
use crate::services::projects;
use crate::services::{Conflict, ServiceError};

/// Rows per page of the dashboard's tables.
const ROWS_PER_PAGE: u32 = 50;
/// How long a create form stays valid; its request id is the new credential's id.
const FORM_LIFETIME_SECONDS: u64 = 24 * 3600;

/// The organization's API keys, or one project's tokens.
struct Place {
    kind: CredentialKind,
    project: Option<ProjectRecord>,
}

impl Place {
    fn api_keys() -> Self {
        Self {
            kind: CredentialKind::ApiKey,
            project: None,
        }
    }

    async fn tokens(state: &AppState, person: &Person, raw: &str) -> Result<Self, WebError> {
        let project = project_of(state, person, raw).await?;
        Ok(Self {
            kind: CredentialKind::ProjectToken,
            project: Some(project),
        })
    }

    fn project_id(&self) -> Option<ProjectId> {
        self.project.as_ref().map(|p| p.id)
    }

    fn url(&self) -> String {
        match &self.project {
            None => "/settings/api-keys".to_owned(),
            Some(project) => format!("/settings/projects/{}/tokens", project.id),
        }
    }

    fn title(&self) -> String {
        match &self.project {
            None => "API Keys".to_owned(),
            Some(project) => format!("Tokens of {}", project.name),
        }
    }

    fn label(&self) -> &'static str {
        self.kind.label()
    }

    fn section(&self) -> &'static str {
        match self.kind {
            CredentialKind::ApiKey => "keys",
            CredentialKind::ProjectToken => "tokens",
        }
    }

    fn parse_id(&self, raw: &str) -> Result<CredentialId, WebError> {
        CredentialId::parse(raw, self.kind).map_err(|_| WebError::not_found(self.label()))
    }
}

/// A live project of the person's organization.
pub async fn project_of(
    state: &AppState,
    person: &Person,
    raw: &str,
) -> Result<ProjectRecord, WebError> {
    let id = ProjectId::parse(raw).map_err(|_| WebError::not_found("project"))?;
    Ok(projects::get(state, &person.caller(state), id).await?)
}

#[derive(Template)]
#[template(path = "networks.html")]
struct NetworksPage {
    layout: Layout,
    title: String,
    action: String,
    networks: String,
    error: Option<String>,
    cancel_url: String,
}

/// The form that changes the networks a credential may be used from; with `entered` (and
/// its error) when sent back.
async fn networks_page(
    state: &AppState,
    person: &Person,
    place: Place,
    raw_id: &str,
    entered: Option<(String, String)>,
) -> Result<Response, WebError> {
    let id = place.parse_id(raw_id)?;
    let CredentialEntry { view, allowed } =
        credentials::show(state, &person.caller(state), id, place.project_id()).await?;
    if !allowed.change_networks {
        return Err(WebError::forbidden(format!(
            "You cannot change this {}: it is not active, or was created by someone else.",
            place.label()
        )));
    }
    let (networks, error, status) = match entered {
        Some((networks, error)) => (networks, Some(error), StatusCode::UNPROCESSABLE_ENTITY),
        None => (
            view.allowed_cidrs
                .as_ref()
                .map(|networks| networks.to_strings().join("\n"))
                .unwrap_or_default(),
            None,
            StatusCode::OK,
        ),
    };
    let template = NetworksPage {
        layout: Layout::new(state, person, place.section()).await?,
        title: format!("Networks of {} ({})", view.name, view.hint),
        action: format!("{}/{}/networks", place.url(), view.id),
        networks,
        error,
        cancel_url: place.url(),
    };
    Ok(render(status, &template))
}

async fn change_networks(
    state: &AppState,
    person: &Person,
    place: Place,
    raw_id: &str,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    let id = place.parse_id(raw_id)?;
    let caller = person.caller(state);
    let entry = credentials::show(state, &caller, id, place.project_id()).await?;
    if !entry.allowed.change_networks {
        return networks_page(state, person, place, raw_id, None).await;
    }
    let entered = form.text("allowed_cidrs").to_owned();
    let networks = match form_networks(&entered) {
        Ok(networks) => networks,
        Err(message) => {
            return networks_page(state, person, place, raw_id, Some((entered, message))).await;
        }
    };
    let changes = CredentialChanges {
        allowed_cidrs: Some(networks),
        ..CredentialChanges::default()
    };
    credentials::update(state, &caller, id, place.project_id(), changes).await?;
    Ok(Redirect::to(&format!("{}?notice=networks", place.url())).into_response())
}

fn cannot_rotate(place: &Place) -> WebError {
    WebError::forbidden(format!(
        "You cannot rotate this {}: it is not active, is already being rotated, or was \
         created by someone else.",
        place.label()
    ))
}

/// The overlaps the dashboard offers.
const GRACE_CHOICES: [(i64, &str); 4] = [
    (0, "Now: the old one stops at once"),
    (3_600, "In 1 hour"),
    (86_400, "In 24 hours"),
    (604_800, "In 7 days"),
];

#[derive(Template)]
#[template(path = "rotate.html")]
struct RotatePage {
    layout: Layout,
    title: String,
    message: String,
    action: String,
    choices: Vec<(i64, &'static str)>,
    cancel_url: String,
}

async fn confirm_rotate(
    state: &AppState,
    person: &Person,
    place: Place,
    raw_id: &str,
) -> Result<Response, WebError> {
    let id = place.parse_id(raw_id)?;
    let CredentialEntry { view, allowed } =
        credentials::show(state, &person.caller(state), id, place.project_id()).await?;
    if !allowed.rotate {
        return Err(cannot_rotate(&place));
    }
    let template = RotatePage {
        layout: Layout::new(state, person, place.section()).await?,
        title: format!("Rotate {}?", view.name),
        message: format!(
            "A new {} with the same name, scopes and limits is shown once. When should {} ({}) \
             stop working?",
            place.label(),
            view.name,
            view.hint
        ),
        action: format!("{}/{}/rotate", place.url(), view.id),
        choices: GRACE_CHOICES.to_vec(),
        cancel_url: place.url(),
    };
    Ok(render(StatusCode::OK, &template))
}

async fn rotate(
    state: &AppState,
    person: &Person,
    place: Place,
    raw_id: &str,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    let id = place.parse_id(raw_id)?;
    let caller = person.caller(state);
    let entry = credentials::show(state, &caller, id, place.project_id()).await?;
    if !entry.allowed.rotate {
        return Err(cannot_rotate(&place));
    }
    let grace = form
        .text("grace_seconds")
        .parse::<i64>()
        .ok()
        .filter(|g| GRACE_CHOICES.iter().any(|(choice, _)| choice == g))
        .ok_or_else(|| {
            WebError::page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Choose when the old one stops.",
            )
        })?;
    let created = credentials::rotate(state, &caller, id, place.project_id(), grace, None).await?;
    created_page(state, person, &place, created, "rotated").await
}

#[derive(Deserialize)]
pub struct ListParams {
    cursor: Option<String>,
    notice: Option<String>,
}

struct CredentialRow {
    id: String,
    name: String,
    hint: String,
    scopes: Vec<String>,
    /// Granted, but no longer defined: they grant nothing.
    unknown_scopes: Vec<String>,
    created: DateCell,
    last_used: Option<DateCell>,
    expires: Option<DateCell>,
    expired: bool,
    revoked: bool,
    revoke_url: Option<String>,
    /// For an active credential not being rotated, that the person may revoke.
    rotate_url: Option<String>,
    /// Being rotated: works until then.
    rotating_until: Option<DateCell>,
    /// The ranges it may be used from, if limited.
    networks: Option<String>,
    /// Where it was found exposed, if it was.
    exposed: Option<String>,
    /// Where the person may change its networks (an active credential they may revoke).
    networks_url: Option<String>,
    /// The last client addresses it was used from, with when.
    addresses: Vec<(String, DateCell)>,
    /// Active, but beyond the organization's policy.
    exceeds_policy: bool,
}

#[derive(Template)]
#[template(path = "credentials.html")]
struct CredentialsPage {
    layout: Layout,
    title: String,
    intro: String,
    create_label: String,
    new_url: String,
    notice: Option<&'static str>,
    rows: Vec<CredentialRow>,
    empty_text: String,
    first_url: Option<String>,
    next_url: Option<String>,
}

async fn list_page(
    state: &AppState,
    person: &Person,
    place: Place,
    params: ListParams,
) -> Result<Response, WebError> {
    let page = page_from(Some(ROWS_PER_PAGE), params.cursor.as_deref(), |text| {
        CredentialId::parse(text, place.kind)
            .ok()
            .map(|id| id.as_uuid())
    })
    .unwrap_or(Page::first(ROWS_PER_PAGE));
    let filter = CredentialFilter {
        kind: place.kind,
        project: place.project_id(),
    };
    let caller = person.caller(state);
    let list = credentials::list(state, &caller, filter, page).await?;
    let base = place.url();
    let mut rows = Vec::with_capacity(list.data.len());
    for CredentialEntry { view, allowed } in list.data {
        let addresses = credentials::addresses(state, &caller, view.id)
            .await?
            .into_iter()
            .map(|address| (address.ip, DateCell::new(address.last_used_at)))
            .collect();
        rows.push(CredentialRow {
            addresses,
            exceeds_policy: view.exceeds_policy,
            revoke_url: allowed.revoke.then(|| format!("{base}/{}/revoke", view.id)),
            rotate_url: allowed.rotate.then(|| format!("{base}/{}/rotate", view.id)),
            networks_url: allowed
                .change_networks
                .then(|| format!("{base}/{}/networks", view.id)),
            networks: view.allowed_cidrs.as_ref().map(Networks::to_string),
            exposed: view
                .exposure
                .as_ref()
                .map(|exposure| exposure.source.clone()),
            rotating_until: view
                .rotation
                .as_ref()
                .filter(|_| view.status == CredentialStatus::Active)
                .map(|rotation| DateCell::new(rotation.ends_at)),
            id: view.id.to_string(),
            name: view.name.to_string(),
            hint: view.hint,
            scopes: view.scopes,
            unknown_scopes: view.unknown_scopes,
            created: DateCell::new(view.created_at),
            last_used: view.last_used_at.map(DateCell::new),
            expires: view.expires_at.map(DateCell::new),
            expired: view.status == CredentialStatus::Expired,
            revoked: view.status == CredentialStatus::Revoked,
        });
    }
    let intro = match &place.project {
        None => "Keys act for the whole organization. Send one as Authorization: Bearer <key>. \
                 Revoking a key is immediate and permanent."
            .to_owned(),
        Some(project) => format!(
            "Tokens reach only the project {} and hold only project-level scopes. Revoking a \
             token is immediate and permanent.",
            project.name
        ),
    };
    let notice = match params.notice.as_deref() {
        Some("revoked") => Some("Revoked. Applications using it have lost access."),
        Some("networks") => Some("Networks saved. They apply from the next request."),
        _ => None,
    };
    let template = CredentialsPage {
        layout: Layout::new(state, person, place.section()).await?,
        title: place.title(),
        intro,
        create_label: format!("Create {}", title_case(place.label())),
        new_url: format!("{base}/new"),
        notice,
        rows,
        empty_text: format!("No {}s yet.", place.label()),
        first_url: params.cursor.is_some().then(|| base.clone()),
        next_url: list
            .next_cursor
            .map(|cursor| format!("{base}?cursor={cursor}")),
    };
    Ok(render(StatusCode::OK, &template))
}

fn title_case(label: &str) -> String {
    label
        .split(' ')
        .map(|word| {
            if word == "API" {
                return word.to_owned();
            }
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

struct ScopeOption {
    id: String,
    value: String,
    label: String,
    description: String,
    checked: bool,
}

struct ScopeGroup {
    resource: String,
    options: Vec<ScopeOption>,
}

#[derive(Template)]
#[template(path = "credential_new.html")]
struct CredentialForm {
    layout: Layout,
    title: String,
    action: String,
    request_id: String,
    name: String,
    expiry_choices: Vec<Choice>,
    expires_on: String,
    scope_groups: Vec<ScopeGroup>,
    limited: bool,
    networks: String,
    errors: FormErrors,
    submit_label: String,
    cancel_url: String,
}

const EXPIRY_CHOICES: [(&str, &str); 6] = [
    ("never", "No expiration"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("60", "60 days"),
    ("90", "90 days"),
    ("custom", "Custom date"),
];

/// How the grid names a resource: Keyward's own by their labels, the platform's as written,
/// with a capital and spaces.
fn resource_label(resource: &str) -> String {
    let builtin = match resource {
        "instances" => "Instances",
        "projects" => "Projects",
        "api_keys" => "API keys",
        "tokens" => "Project tokens",
        "members" => "Members",
        "audit" => "Audit log",
        "keys" => "Key verification",
        _ => {
            let mut chars = resource.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            return first
                .into_iter()
                .chain(chars)
                .collect::<String>()
                .replace('_', " ");
        }
    };
    builtin.to_owned()
}

/// The scopes a person may grant on this kind of credential, one row per resource (in the
/// order resources first appear in the catalog), each with its description.
fn scope_groups(
    catalog: &ScopeCatalog,
    grantable: &ScopeSet,
    checked: &ScopeSet,
) -> Vec<ScopeGroup> {
    let mut groups: Vec<(&str, ScopeGroup)> = Vec::new();
    for scope in grantable.iter() {
        let Some(info) = catalog.info(scope) else {
            continue;
        };
        let (resource, action) = info.name.split_once(':').unwrap_or((&info.name, ""));
        let option = ScopeOption {
            // `:` is never in a name otherwise, so no two scopes share an id.
            id: format!("scope-{}", info.name.replace(':', "-")),
            value: info.name.clone(),
            label: action.replace('_', " "),
            description: info.description.clone(),
            checked: checked.contains(scope),
        };
        match groups.iter_mut().find(|(name, _)| *name == resource) {
            Some((_, group)) => group.options.push(option),
            None => groups.push((
                resource,
                ScopeGroup {
                    resource: resource_label(resource),
                    options: vec![option],
                },
            )),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// What the person entered, to show the form again with its errors.
#[derive(Default)]
struct Entered {
    name: String,
    expires_in: String,
    expires_on: String,
    scopes: ScopeSet,
    networks: String,
}

async fn form_page(
    state: &AppState,
    person: &Person,
    place: &Place,
    entered: Entered,
    errors: FormErrors,
) -> Result<Response, WebError> {
    let catalog = &state.config.scopes;
    let holdable = catalog.holdable(place.kind);
    let grantable = holdable.intersection(&catalog.role_cap(person.membership.role));
    let status = errors.status();
    let selected = if entered.expires_in.is_empty() {
        "never"
    } else {
        entered.expires_in.as_str()
    };
    let template = CredentialForm {
        layout: Layout::new(state, person, place.section()).await?,
        title: format!("Create {}", title_case(place.label())),
        action: place.url(),
        request_id: CredentialId::generate(place.kind).to_string(),
        name: entered.name,
        expiry_choices: EXPIRY_CHOICES
            .iter()
            .map(|&(value, label)| Choice {
                value,
                label,
                selected: value == selected,
            })
            .collect(),
        expires_on: entered.expires_on,
        scope_groups: scope_groups(catalog, &grantable, &entered.scopes),
        limited: grantable != holdable,
        networks: entered.networks,
        errors,
        submit_label: format!("Create {}", title_case(place.label())),
        cancel_url: place.url(),
    };
    Ok(render(status, &template))
}

/// The expiry chosen in the form: none, a number of days from now, or the end of a date.
fn form_expiry(
    expires_in: &str,
    expires_on: &str,
    now: Timestamp,
) -> Result<Option<Timestamp>, String> {
    let expires_at = match expires_in {
        "" | "never" => None,
        "7" | "30" | "60" | "90" => {
            let days: i64 = expires_in
                .parse()
                .map_err(|_| "choose an expiration".to_owned())?;
            Some(now.plus_seconds(days * 24 * 3600))
        }
        "custom" => {
            if expires_on.is_empty() {
                return Err("pick a date for the custom expiration".into());
            }
            let at = Timestamp::parse(&format!("{expires_on}T23:59:59Z"))
                .map_err(|_| "enter a date such as 2030-01-31".to_owned())?;
            Some(at)
        }
        _ => return Err("choose an expiration".into()),
    };
    check_expiry(expires_at, now).map_err(|e| e.message)
}

/// The ranges typed in a form, one per line or separated by commas or spaces; none for any
/// address.
fn form_networks(text: &str) -> Result<Option<Networks>, String> {
    let ranges: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .collect();
    if ranges.is_empty() {
        return Ok(None);
    }
    Networks::parse(&ranges)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The id of the credential a form creates: derived from the id the form was rendered with
/// (if it is one of this kind and not too old) and the organization. Sending the form twice
/// names the same credential, so it is created once; but the browser chooses the form's id,
/// so it is never a credential id itself, or a form could ask whether some other
/// organization's credential exists.
fn credential_id_for_form(
    kind: CredentialKind,
    organization: OrganizationId,
    raw: &str,
    now: Timestamp,
) -> Option<CredentialId> {
    let form_id = CredentialId::parse(raw, kind).ok()?;
    let (seconds, _) = form_id.as_uuid().get_timestamp()?.to_unix();
    let now = u64::try_from(now.unix_seconds()).ok()?;
    if seconds > now + 60 || now.saturating_sub(seconds) > FORM_LIFETIME_SECONDS {
        return None;
    }
    let digest = KeyDigest::of(&format!("dashboard form {organization} {form_id}"));
    let mut bytes = *form_id.as_uuid().as_bytes();
    // Keep the form's UUIDv7 timestamp (48 bits); replace the rest by the digest, then set
    // the version and variant bits again.
    bytes[6..].copy_from_slice(&digest.as_bytes()[..10]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Some(CredentialId::from_uuid(uuid::Uuid::from_bytes(bytes), kind))
}

#[derive(Template)]
#[template(path = "credential_created.html")]
struct CreatedPage {
    layout: Layout,
    title: String,
    kind_label: &'static str,
    key: String,
    name: String,
    hint: String,
    scopes: Vec<String>,
    expires: Option<DateCell>,
    curl: String,
    list_url: String,
}

async fn create(
    state: &AppState,
    person: &Person,
    place: Place,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    let now = state.config.clock.now();
    let entered = Entered {
        name: form.text("name").to_owned(),
        expires_in: form.text("expires_in").to_owned(),
        expires_on: form.text("expires_on").to_owned(),
        networks: form.text("allowed_cidrs").to_owned(),
        scopes: form
            .all("scopes")
            .iter()
            .filter_map(|name| state.config.scopes.lookup(name))
            .collect(),
    };
    let mut errors = FormErrors::default();
    let id = credential_id_for_form(
        place.kind,
        person.membership.organization_id,
        form.text("request_id"),
        now,
    );
    if id.is_none() {
        errors.push(
            "form",
            "This form was too old; check the fields and create again.",
        );
    }
    let name = parse_name(&entered.name).map_err(|e| errors.0.push(e)).ok();
    let scopes = parse_scopes(&state.config.scopes, &form.all("scopes"))
        .map_err(|e| errors.0.push(e))
        .ok();
    let expires_at = form_expiry(&entered.expires_in, &entered.expires_on, now)
        .map_err(|message| errors.push("expires_at", message))
        .ok();
    let networks = form_networks(&entered.networks)
        .map_err(|message| errors.push("allowed_cidrs", message))
        .ok();
    let (Some(id), Some(name), Some(scopes), Some(expires_at), Some(allowed_cidrs)) =
        (id, name, scopes, expires_at, networks)
    else {
        return form_page(state, person, &place, entered, errors).await;
    };

    let input = CredentialInput {
        name,
        scopes,
        expires_at,
        rate_limit: None,
        allowed_cidrs,
    };
    let created = match credentials::create(
        state,
        &person.caller(state),
        place.kind,
        place.project_id(),
        input,
        id,
    )
    .await
    {
        Ok(created) => created,
        Err(ServiceError::Conflict(Conflict::AlreadyCreated(_))) => {
            // The id is this organization's own (see `credential_id_for_form`).
            let message = format!(
                "This form was already sent, so the {} exists and was shown once. It \
                     cannot be shown again: find it in the list, or create another.",
                place.label()
            );
            return Err(WebError::page(StatusCode::CONFLICT, message));
        }
        Err(error) => {
            errors.absorb(error)?;
            return form_page(state, person, &place, entered, errors).await;
        }
    };
    created_page(state, person, &place, created, "created").await
}

/// The page that shows a new credential's key, once.
async fn created_page(
    state: &AppState,
    person: &Person,
    place: &Place,
    created: credentials::CreatedCredential,
    verb: &str,
) -> Result<Response, WebError> {
    let curl = format!(
        "curl -X GET \"{}/v1/instances\" -H \"Authorization: Bearer {}\"",
        state.config.public_url.trim_end_matches('/'),
        created.key
    );
    let template = CreatedPage {
        layout: Layout::new(state, person, place.section()).await?,
        title: format!("{} {verb}", title_case(place.label())),
        kind_label: place.label(),
        key: created.key,
        name: created.name.to_string(),
        hint: created.hint,
        scopes: created.scopes,
        expires: created.expires_at.map(DateCell::new),
        curl,
        list_url: place.url(),
    };
    Ok(render(StatusCode::OK, &template))
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

async fn confirm_revoke(
    state: &AppState,
    person: &Person,
    place: Place,
    raw_id: &str,
) -> Result<Response, WebError> {
    let id = place.parse_id(raw_id)?;
    let CredentialEntry { view, allowed } =
        credentials::show(state, &person.caller(state), id, place.project_id()).await?;
    if !allowed.revoke {
        return Err(WebError::forbidden(format!(
            "You cannot revoke this {}: members revoke only what they created.",
            place.label()
        )));
    }
    let template = ConfirmPage {
        layout: Layout::new(state, person, place.section()).await?,
        title: format!("Revoke {}?", view.name),
        message: format!(
            "Any application using the {} {} ({}) will lose access at once.",
            place.label(),
            view.name,
            view.hint
        ),
        details: vec!["Revoking is permanent: it cannot be undone.".to_owned()],
        action: format!("{}/{}/revoke", place.url(), view.id),
        button: format!("Revoke {}", place.label()),
        cancel_url: place.url(),
    };
    Ok(render(StatusCode::OK, &template))
}

async fn revoke(
    state: &AppState,
    person: &Person,
    place: Place,
    raw_id: &str,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    let id = place.parse_id(raw_id)?;
    let caller = person.caller(state);
    let CredentialEntry { view, allowed } =
        credentials::show(state, &caller, id, place.project_id()).await?;
    if view.status == CredentialStatus::Revoked {
        return Ok(Redirect::to(&place.url()).into_response());
    }
    if !allowed.revoke {
        return Err(WebError::forbidden(format!(
            "You cannot revoke this {}: members revoke only what they created.",
            place.label()
        )));
    }
    credentials::revoke(state, &caller, id, place.project_id()).await?;
    Ok(Redirect::to(&format!("{}?notice=revoked", place.url())).into_response())
}

fn list_params(
    query: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ListParams {
    query.map(|Query(params)| params).unwrap_or(ListParams {
        cursor: None,
        notice: None,
    })
}

pub async fn list_api_keys(
    State(state): State<AppState>,
    person: Person,
    query: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    list_page(&state, &person, Place::api_keys(), list_params(query)).await
}

pub async fn new_api_key(
    State(state): State<AppState>,
    person: Person,
) -> Result<Response, WebError> {
    form_page(
        &state,
        &person,
        &Place::api_keys(),
        Entered::default(),
        FormErrors::default(),
    )
    .await
}

pub async fn create_api_key(
    State(state): State<AppState>,
    person: Person,
    form: FormData,
) -> Result<Response, WebError> {
    create(&state, &person, Place::api_keys(), form).await
}

pub async fn confirm_revoke_api_key(
    State(state): State<AppState>,
    person: Person,
    Path(key_id): Path<String>,
) -> Result<Response, WebError> {
    confirm_revoke(&state, &person, Place::api_keys(), &key_id).await
}

pub async fn revoke_api_key(
    State(state): State<AppState>,
    person: Person,
    Path(key_id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    revoke(&state, &person, Place::api_keys(), &key_id, form).await
}

pub async fn confirm_rotate_api_key(
    State(state): State<AppState>,
    person: Person,
    Path(key_id): Path<String>,
) -> Result<Response, WebError> {
    confirm_rotate(&state, &person, Place::api_keys(), &key_id).await
}

pub async fn rotate_api_key(
    State(state): State<AppState>,
    person: Person,
    Path(key_id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    rotate(&state, &person, Place::api_keys(), &key_id, form).await
}

pub async fn confirm_rotate_token(
    State(state): State<AppState>,
    person: Person,
    Path((project_id, token_id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let place = Place::tokens(&state, &person, &project_id).await?;
    confirm_rotate(&state, &person, place, &token_id).await
}

pub async fn rotate_token(
    State(state): State<AppState>,
    person: Person,
    Path((project_id, token_id)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, WebError> {
    let place = Place::tokens(&state, &person, &project_id).await?;
    rotate(&state, &person, place, &token_id, form).await
}

pub async fn edit_api_key_networks(
    State(state): State<AppState>,
    person: Person,
    Path(key_id): Path<String>,
) -> Result<Response, WebError> {
    networks_page(&state, &person, Place::api_keys(), &key_id, None).await
}

pub async fn change_api_key_networks(
    State(state): State<AppState>,
    person: Person,
    Path(key_id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    change_networks(&state, &person, Place::api_keys(), &key_id, form).await
}

pub async fn edit_token_networks(
    State(state): State<AppState>,
    person: Person,
    Path((project_id, token_id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let place = Place::tokens(&state, &person, &project_id).await?;
    networks_page(&state, &person, place, &token_id, None).await
}

pub async fn change_token_networks(
    State(state): State<AppState>,
    person: Person,
    Path((project_id, token_id)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, WebError> {
    let place = Place::tokens(&state, &person, &project_id).await?;
    change_networks(&state, &person, place, &token_id, form).await
}

pub async fn list_tokens(
    State(state): State<AppState>,
    person: Person,
    Path(project_id): Path<String>,
    query: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let place = Place::tokens(&state, &person, &project_id).await?;
    list_page(&state, &person, place, list_params(query)).await
}

pub async fn new_token(
    State(state): State<AppState>,
    person: Person,
    Path(project_id): Path<String>,
) -> Result<Response, WebError> {
    let place = Place::tokens(&state, &person, &project_id).await?;
    form_page(
        &state,
        &person,
        &place,
        Entered::default(),
        FormErrors::default(),
    )
    .await
}

pub async fn create_token(
    State(state): State<AppState>,
    person: Person,
    Path(project_id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    let place = Place::tokens(&state, &person, &project_id).await?;
    create(&state, &person, place, form).await
}

pub async fn confirm_revoke_token(
    State(state): State<AppState>,
    person: Person,
    Path((project_id, token_id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let place = Place::tokens(&state, &person, &project_id).await?;
    confirm_revoke(&state, &person, place, &token_id).await
}

pub async fn revoke_token(
    State(state): State<AppState>,
    person: Person,
    Path((project_id, token_id)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, WebError> {
    let place = Place::tokens(&state, &person, &project_id).await?;
    revoke(&state, &person, place, &token_id, form).await
}

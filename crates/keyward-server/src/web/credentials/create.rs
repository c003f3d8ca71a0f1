//! The create form (name, expiry, scopes in a grid, networks, external id and meta) and the
//! creation.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::{
    CredentialId, CredentialKind, CreditSettings, Every, KeyDigest, Metadata, OrganizationId,
    Refill, ScopeCatalog, ScopeSet, Timestamp,
};

use super::edit::{form_external_id, form_meta, form_networks};
use super::{Place, Target, created_page, title_case};
use crate::AppState;
use crate::services::credentials::{self, CredentialInput, check_expiry, parse_name, parse_scopes};
use crate::services::{Conflict, ServiceError};
use crate::web::form::FormData;
use crate::web::page::{FormErrors, Layout};
use crate::web::response::{WebError, render};
use crate::web::session::Person;

/// How long a create form stays valid; its request id is the new credential's id.
const FORM_LIFETIME_SECONDS: u64 = 24 * 3600;

pub(in crate::web) async fn new_form(
    State(state): State<AppState>,
    target: Target,
) -> Result<Response, WebError> {
    let Target { person, place, .. } = &target;
    form_page(
        &state,
        person,
        place,
        Entered::default(),
        FormErrors::default(),
    )
    .await
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
    external_id: String,
    meta: String,
    credits: String,
    refill_choices: Vec<Choice>,
    refill_amount: String,
    refill_on_day: String,
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
    external_id: String,
    meta: String,
    credits: String,
    refill_every: String,
    refill_amount: String,
    refill_on_day: String,
}

const REFILL_CHOICES: [(&str, &str); 3] = [
    ("none", "Never"),
    ("day", "Each day (UTC)"),
    ("month", "Each month (UTC)"),
];

/// Credits from the form: none when the credits field is empty (and no refill is asked for).
fn form_credits(entered: &Entered) -> Result<Option<CreditSettings>, String> {
    let number = |text: &str, what: &str| {
        text.trim()
            .parse::<i64>()
            .map_err(|_| format!("{what} must be a whole number"))
    };
    let every = match entered.refill_every.as_str() {
        "" | "none" => None,
        "day" => Some(Every::Day),
        "month" => Some(Every::Month),
        _ => return Err("choose never, each day or each month".into()),
    };
    if entered.credits.trim().is_empty() {
        return match every {
            None => Ok(None),
            Some(_) => Err("give the credits it starts with, or no refill".into()),
        };
    }
    let remaining = number(&entered.credits, "credits")?;
    let refill = match every {
        None => None,
        Some(every) => {
            let amount = number(&entered.refill_amount, "the refill")?;
            let on_day = match (every, entered.refill_on_day.trim()) {
                (Every::Month, day) if !day.is_empty() => Some(
                    day.parse::<u8>()
                        .map_err(|_| "the day of the month must be 1 to 31".to_owned())?,
                ),
                _ => None,
            };
            Some(Refill::new(amount, every, on_day).map_err(|e| e.0.to_owned())?)
        }
    };
    CreditSettings::new(remaining, refill)
        .map(Some)
        .map_err(|e| e.0.to_owned())
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
        external_id: entered.external_id,
        meta: entered.meta,
        refill_choices: REFILL_CHOICES
            .iter()
            .map(|&(value, label)| Choice {
                value,
                label,
                selected: value == entered.refill_every
                    || (value == "none" && entered.refill_every.is_empty()),
            })
            .collect(),
        credits: entered.credits,
        refill_amount: entered.refill_amount,
        refill_on_day: entered.refill_on_day,
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

pub(in crate::web) async fn create(
    State(state): State<AppState>,
    target: Target,
    form: FormData,
) -> Result<Response, WebError> {
    let state = &state;
    let Target { person, place, .. } = &target;
    person.check_csrf(form.csrf_token())?;
    let now = state.config.clock.now();
    let entered = Entered {
        name: form.text("name").to_owned(),
        expires_in: form.text("expires_in").to_owned(),
        expires_on: form.text("expires_on").to_owned(),
        networks: form.text("allowed_cidrs").to_owned(),
        external_id: form.text("external_id").to_owned(),
        meta: form.text("meta").to_owned(),
        credits: form.text("credits").to_owned(),
        refill_every: form.text("refill_every").to_owned(),
        refill_amount: form.text("refill_amount").to_owned(),
        refill_on_day: form.text("refill_on_day").to_owned(),
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
    let external_id = form_external_id(&entered.external_id)
        .map_err(|e| errors.0.push(e))
        .ok();
    let meta = form_meta(&entered.meta).map_err(|e| errors.0.push(e)).ok();
    let credits = form_credits(&entered)
        .map_err(|message| errors.push("credits", message))
        .ok();
    let (
        Some(id),
        Some(name),
        Some(scopes),
        Some(expires_at),
        Some(allowed_cidrs),
        Some(external_id),
        Some(meta),
        Some(credits),
    ) = (
        id,
        name,
        scopes,
        expires_at,
        networks,
        external_id,
        meta,
        credits,
    )
    else {
        return form_page(state, person, place, entered, errors).await;
    };

    let input = CredentialInput {
        name,
        scopes,
        expires_at,
        rate_limit: None,
        allowed_cidrs,
        metadata: Metadata { external_id, meta },
        credits,
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
            return form_page(state, person, place, entered, errors).await;
        }
    };
    created_page(state, person, place, created, "created").await
}

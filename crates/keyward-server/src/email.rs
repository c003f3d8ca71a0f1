//! Email (`[smtp]`): messages are written to the outbox in the transaction of whatever they
//! tell about, and every node sends what is due, each message taken by one node at a time
//! (a lease), retried with growing waits while the SMTP server is away, given up after
//! [`RETRY_DELAYS`].
//!
//! A message holds no secret in the database: a link's one-time token is derived when the
//! message is sent, from the installation's key and the message's id
//! (`SigningKey::link_token`), and only its SHA-256 is kept. Every message carries
//! `Message-ID: <id@keyward>`, so the rare copy sent twice (a node stopping between the SMTP
//! server's acceptance and recording it) is the same message to the receiving side.

use std::time::Duration;

use askama::Template;
use keyward_core::Timestamp;
use keyward_store::{ClaimedEmail, EmailOutcome, StoreError};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::AppState;
use crate::branding::Branding;

/// The waits after each failed attempt; after the last, the message is given up (about a
/// day in all).
pub const RETRY_DELAYS: [Duration; 10] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(1_800),
    Duration::from_secs(3_600),
    Duration::from_secs(3 * 3_600),
    Duration::from_secs(6 * 3_600),
    Duration::from_secs(6 * 3_600),
    Duration::from_secs(6 * 3_600),
];

/// How long a node holds a message it is sending; longer than the SMTP timeout.
const LEASE_SECONDS: i64 = 120;
/// Messages taken at once.
const BATCH: i64 = 20;

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plain, then STARTTLS (required); port 587 by default.
    StartTls,
    /// TLS from the first byte; port 465 by default.
    Tls,
    /// No encryption at all: only for a relay on the same host or a test server.
    None,
}

impl Security {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "starttls" => Ok(Self::StartTls),
            "tls" => Ok(Self::Tls),
            "none" => Ok(Self::None),
            _ => Err(format!("`{text}` is not one of starttls, tls, none")),
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Self::StartTls => 587,
            Self::Tls => 465,
            Self::None => 25,
        }
    }
}

/// `[smtp]`.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `Keyward <keys@example.com>` or `keys@example.com`.
    pub from: String,
}

/// Sends messages to the SMTP server of `[smtp]`.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.host)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    pub fn new(settings: SmtpSettings) -> Result<Self, String> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("`{}` is not a sender address ({e})", settings.from))?;
        let builder = match settings.security {
            Security::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
                    .map_err(|e| e.to_string())?
            }
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)
                .map_err(|e| e.to_string())?,
            Security::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
        };
        let mut builder = builder
            .port(settings.port)
            .timeout(Some(Duration::from_secs(30)));
        if let Some(username) = settings.username {
            builder = builder.credentials(Credentials::new(
                username,
                settings.password.unwrap_or_default(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            host: settings.host,
        })
    }

    async fn send(&self, message: Message) -> Result<(), String> {
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", self.host))
    }
}

/// What a message says, before it becomes one.
pub struct Content {
    pub subject: String,
    /// Paragraphs of plain text.
    pub paragraphs: Vec<String>,
    /// A button (and a line of its own in the plain text): label and URL.
    pub action: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "email.html")]
struct EmailPage<'a> {
    branding: &'a Branding,
    accent: String,
    ink: &'static str,
    logo: Option<String>,
    content: &'a Content,
}

fn body(state: &AppState, content: &Content) -> Result<(String, String), String> {
    let branding = &state.config.branding;
    let mut text = content.paragraphs.join("\n\n");
    if let Some((label, url)) = &content.action {
        text.push_str(&format!("\n\n{label}: {url}"));
    }
    text.push_str(&format!("\n\n— {}\n", branding.product_name));
    let accent = branding.accent.unwrap_or(crate::branding::Accent {
        rgb: [0x24, 0x56, 0xc7],
    });
    let page = EmailPage {
        branding,
        accent: accent.css(),
        ink: accent.ink(),
        logo: branding
            .logo
            .as_ref()
            .map(|_| format!("{}/assets/logo", state.config.public_url)),
        content,
    };
    let html = page.render().map_err(|e| e.to_string())?;
    Ok((text, html))
}

/// The words of a message of the outbox.
fn content(state: &AppState, email: &ClaimedEmail) -> Result<Content, String> {
    let product = &state.config.branding.product_name;
    let public_url = &state.config.public_url;
    let text = |name: &str| email.params[name].as_str().unwrap_or_default().to_owned();
    let token = |purpose: &str| {
        state
            .config
            .webhook_signing_key
            .as_ref()
            .map(|key| key.link_token(purpose, email.id.as_bytes()))
            .ok_or_else(|| "no installation key to derive the link from".to_owned())
    };
    Ok(match email.template.as_str() {
        "password_reset" => Content {
            subject: format!("Reset your {product} password"),
            paragraphs: vec![
                format!(
                    "Someone, hopefully you, asked to reset the password of the {product} \
                     account {}.",
                    email.recipient
                ),
                "The link works once, within an hour. If it was not you, ignore this \
                 message: your password stays as it is."
                    .to_owned(),
            ],
            action: Some((
                "Choose a new password".to_owned(),
                format!("{public_url}/password/reset/{}", *token(PASSWORD_RESET)?),
            )),
        },
        "credential_expiring" => Content {
            subject: format!(
                "{} “{}” expires {}",
                text("kind_label"),
                text("name"),
                text("when")
            ),
            paragraphs: vec![
                format!(
                    "The {} “{}” ({}) of {} expires at {}.",
                    text("kind_label").to_lowercase(),
                    text("name"),
                    text("hint"),
                    text("organization"),
                    text("expires_at")
                ),
                "Programs using it will be refused from then on. Create a new one and put it \
                 in their place before that."
                    .to_owned(),
            ],
            action: Some(("Open".to_owned(), format!("{public_url}{}", text("path")))),
        },
        "credential_leaked" => Content {
            subject: format!(
                "{} “{}” was found exposed",
                text("kind_label"),
                text("name")
            ),
            paragraphs: vec![
                format!(
                    "The {} “{}” ({}) of {} was reported exposed in public: {}.",
                    text("kind_label").to_lowercase(),
                    text("name"),
                    text("hint"),
                    text("organization"),
                    text("where")
                ),
                text("consequence"),
            ],
            action: Some(("Open".to_owned(), format!("{public_url}{}", text("path")))),
        },
        "invitation" => {
            let role = text("role");
            let article = if role.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            Content {
                subject: format!("Join {} on {product}", text("organization")),
                paragraphs: vec![
                    format!(
                        "{} to join {} on {product} as {article} {role}.",
                        match text("inviter") {
                            inviter if inviter.is_empty() => "You are invited".to_owned(),
                            inviter => format!("{inviter} invited you"),
                        },
                        text("organization"),
                    ),
                    format!(
                        "The link works once, within seven days. If you have no {product} \
                         account yet, it lets you set a password; if you have one, log in as \
                         {} to accept. If you did not expect this, ignore this message: \
                         nobody joins without accepting.",
                        email.recipient
                    ),
                ],
                action: Some((
                    "See the invitation".to_owned(),
                    format!("{public_url}/invitations/{}", *token(INVITATION)?),
                )),
            }
        }
        other => return Err(format!("no message named {other}")),
    })
}

/// Whether the installation emails links (invitations, resets): `[smtp]`, and the key that
/// derives their tokens.
pub fn sends_links(state: &AppState) -> bool {
    state.config.smtp.is_some() && state.config.webhook_signing_key.is_some()
}

/// The purpose a reset link's token is derived for.
pub const PASSWORD_RESET: &str = "password reset";
/// The purpose an invitation link's token is derived for.
pub const INVITATION: &str = "invitation";

fn message(state: &AppState, mailer: &Mailer, email: &ClaimedEmail) -> Result<Message, String> {
    let content = content(state, email)?;
    let (text, html) = body(state, &content)?;
    let to: Mailbox = email
        .recipient
        .as_str()
        .parse()
        .map_err(|e| format!("recipient: {e}"))?;
    let mut from = mailer.from.clone();
    if from.name.is_none() {
        from.name = Some(state.config.branding.product_name.clone());
    }
    Message::builder()
        .from(from)
        .to(to)
        .subject(content.subject)
        .message_id(Some(format!("<{}@keyward>", email.id)))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| e.to_string())
}

/// Sends what is due now; returns how many messages went.
pub async fn deliver_due(state: &AppState) -> Result<usize, StoreError> {
    let Some(mailer) = &state.config.smtp else {
        return Ok(0);
    };
    let now = state.config.clock.now();
    let claimed = state.store.claim_emails(now, LEASE_SECONDS, BATCH).await?;
    let mut sent = 0;
    for email in claimed {
        let outcome = match message(state, mailer, &email) {
            Err(error) => EmailOutcome::GiveUp { error },
            Ok(message) => {
                match mailer.send(message).await {
                    Ok(()) => {
                        sent += 1;
                        EmailOutcome::Sent
                    }
                    Err(error) => {
                        tracing::warn!(%error, attempt = email.attempts + 1, "could not send an email");
                        let delays = &state.config.email_retry_delays;
                        match delays.get(email.attempts as usize) {
                            Some(delay) => EmailOutcome::Retry {
                                at: state.config.clock.now().plus_seconds(
                                    i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
                                ),
                                error,
                            },
                            None => EmailOutcome::GiveUp { error },
                        }
                    }
                }
            }
        };
        if let EmailOutcome::GiveUp { error } = &outcome {
            tracing::error!(%error, template = email.template, "gave up an email");
        }
        state
            .store
            .finish_email(email.id, outcome, state.config.clock.now())
            .await?;
    }
    Ok(sent)
}

/// Sends due messages every `email_poll_interval` until `stopped`.
pub async fn deliver_until(state: AppState, mut stopped: tokio::sync::watch::Receiver<bool>) {
    if state.config.smtp.is_none() {
        return;
    }
    loop {
        if let Err(error) = deliver_due(&state).await {
            tracing::warn!(%error, "could not send emails");
        }
        tokio::select! {
            _ = tokio::time::sleep(state.config.email_poll_interval) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// A new message of the outbox (`template`, with `params`), for `recipient`.
pub fn new_email(
    recipient: keyward_core::Email,
    template: &str,
    params: serde_json::Value,
    at: Timestamp,
) -> keyward_store::NewEmail {
    keyward_store::NewEmail {
        id: uuid::Uuid::now_v7(),
        recipient,
        template: template.to_owned(),
        params,
        created_at: at,
    }
}

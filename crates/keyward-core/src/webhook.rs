//! Webhooks, as the Standard Webhooks specification has them: event types, endpoint secrets
//! (`whsec_` and base64) and the `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
//! `{webhook-id}.{webhook-timestamp}.{body}`).
//!
//! No endpoint secret is ever stored: each is derived from the installation's signing key
//! (a file every node shares) and the endpoint's id, so the database alone signs nothing.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::id::WebhookId;

type HmacSha256 = hmac::Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cold]
fn unreachable_hmac() -> ! {
    // `new_from_slice` refuses no key length for HMAC.
    panic!("HMAC refused a key")
}

/// What happened, as a webhook names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    ApiKeyCreated,
    ApiKeyRevoked,
    ApiKeyRotated,
    ApiKeyExpiring,
    ApiKeyExpired,
    ApiKeyCreditsLow,
    ApiKeyCreditsExhausted,
    ProjectTokenCreated,
    ProjectTokenRevoked,
    ProjectTokenRotated,
    ProjectTokenExpiring,
    ProjectTokenExpired,
    ProjectTokenCreditsLow,
    ProjectTokenCreditsExhausted,
    CredentialLeaked,
}

impl EventType {
    pub const ALL: [EventType; 15] = [
        Self::ApiKeyCreated,
        Self::ApiKeyRevoked,
        Self::ApiKeyRotated,
        Self::ApiKeyExpiring,
        Self::ApiKeyExpired,
        Self::ApiKeyCreditsLow,
        Self::ApiKeyCreditsExhausted,
        Self::ProjectTokenCreated,
        Self::ProjectTokenRevoked,
        Self::ProjectTokenRotated,
        Self::ProjectTokenExpiring,
        Self::ProjectTokenExpired,
        Self::ProjectTokenCreditsLow,
        Self::ProjectTokenCreditsExhausted,
        Self::CredentialLeaked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKeyCreated => "api_key.created",
            Self::ApiKeyRevoked => "api_key.revoked",
            Self::ApiKeyRotated => "api_key.rotated",
            Self::ApiKeyExpiring => "api_key.expiring",
            Self::ApiKeyExpired => "api_key.expired",
            Self::ApiKeyCreditsLow => "api_key.credits_low",
            Self::ApiKeyCreditsExhausted => "api_key.credits_exhausted",
            Self::ProjectTokenCreated => "project_token.created",
            Self::ProjectTokenRevoked => "project_token.revoked",
            Self::ProjectTokenRotated => "project_token.rotated",
            Self::ProjectTokenExpiring => "project_token.expiring",
            Self::ProjectTokenExpired => "project_token.expired",
            Self::ProjectTokenCreditsLow => "project_token.credits_low",
            Self::ProjectTokenCreditsExhausted => "project_token.credits_exhausted",
            Self::CredentialLeaked => "credential.leaked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.as_str() == text)
    }

    /// What it says, for the dashboard.
    pub fn description(self) -> &'static str {
        match self {
            Self::ApiKeyCreated | Self::ProjectTokenCreated => "created (never with the key)",
            Self::ApiKeyRevoked | Self::ProjectTokenRevoked => "revoked",
            Self::ApiKeyRotated | Self::ProjectTokenRotated => "rotated: a successor was made",
            Self::ApiKeyExpiring | Self::ProjectTokenExpiring => {
                "expires within 7 days, then within a day"
            }
            Self::ApiKeyExpired | Self::ProjectTokenExpired => "expired",
            Self::ApiKeyCreditsLow | Self::ProjectTokenCreditsLow => {
                "its credits fell to a tenth of the last amount set or refilled"
            }
            Self::ApiKeyCreditsExhausted | Self::ProjectTokenCreditsExhausted => {
                "a request was refused: its credits ran out"
            }
            Self::CredentialLeaked => "reported as exposed in public",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of event types: one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventTypes(u16);

impl EventTypes {
    pub fn contains(self, event: EventType) -> bool {
        self.0 & Self::bit(event) != 0
    }

    pub fn insert(&mut self, event: EventType) {
        self.0 |= Self::bit(event);
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn bit(event: EventType) -> u16 {
        let index = EventType::ALL
            .iter()
            .position(|e| *e == event)
            .unwrap_or_default();
        1 << index
    }

    pub fn iter(self) -> impl Iterator<Item = EventType> {
        EventType::ALL
            .into_iter()
            .filter(move |e| self.contains(*e))
    }

    /// Reads names; `Err` names the first unknown one.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        let mut set = Self::default();
        for name in names {
            let name = name.as_ref();
            let event = EventType::parse(name).ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
                format!(
                    "unknown event `{}`; the events are {}",
                    name.chars().take(60).collect::<String>(),
                    known.join(", ")
                )
            })?;
            set.insert(event);
        }
        Ok(set)
    }

    /// The stored form: names separated by single spaces.
    pub fn to_storage(self) -> String {
        self.iter()
            .map(EventType::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(EventType::as_str).collect()
    }
}

impl FromIterator<EventType> for EventTypes {
    fn from_iter<I: IntoIterator<Item = EventType>>(iter: I) -> Self {
        let mut set = Self::default();
        for event in iter {
            set.insert(event);
        }
        set
    }
}

/// The installation's webhook signing key: 32 random bytes, from which every endpoint's
/// secret is derived. Every node must have the same one.
pub struct SigningKey(Zeroizing<[u8; 32]>);

#[derive(Debug, thiserror::Error)]
#[error("a webhook signing key is 32 bytes in base64 (44 characters), on one line")]
pub struct InvalidSigningKey;

impl SigningKey {
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut())?;
        Ok(Self(bytes))
    }

    /// Reads the file form: the base64 of the 32 bytes.
    pub fn parse(text: &str) -> Result<Self, InvalidSigningKey> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| InvalidSigningKey)?,
        );
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| InvalidSigningKey)?;
        Ok(Self(Zeroizing::new(bytes)))
    }

    /// The file form.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    /// The secret of the endpoint `id`.
    pub fn secret_for(&self, id: WebhookId) -> EndpointSecret {
        let derived = hmac(
            self.0.as_ref(),
            &[b"keyward webhook endpoint secret ", id.as_uuid().as_bytes()],
        );
        EndpointSecret(Zeroizing::new(derived.to_vec()))
    }
}

impl SigningKey {
    /// A one-time link's token (a password reset's, an invitation's), derived from the key,
    /// the link's purpose and the id of the message that carries it: the same on every node,
    /// so no node needs to store it, and the database keeps only its SHA-256.
    pub fn link_token(&self, purpose: &str, message_id: &[u8]) -> Zeroizing<String> {
        let derived = hmac(
            self.0.as_ref(),
            &[b"keyward link token ", purpose.as_bytes(), b" ", message_id],
        );
        Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(derived))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(…)")
    }
}

/// One endpoint's signing secret (32 bytes when Keyward makes it; any length when read).
pub struct EndpointSecret(Zeroizing<Vec<u8>>);

impl EndpointSecret {
    /// From the `whsec_…` form (for receivers and tests).
    pub fn parse(text: &str) -> Option<Self> {
        let decoded = STANDARD.decode(text.strip_prefix("whsec_")?).ok()?;
        (!decoded.is_empty()).then(|| Self(Zeroizing::new(decoded)))
    }

    /// `whsec_` and the base64 of the secret: what the endpoint's owner is shown, once.
    pub fn expose(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("whsec_{}", STANDARD.encode(self.0.as_slice())))
    }

    /// The `webhook-signature` header value for a message.
    pub fn sign(&self, message_id: &str, timestamp: i64, body: &[u8]) -> String {
        let signature = self.raw_signature(message_id, timestamp, body);
        format!("v1,{}", STANDARD.encode(signature))
    }

    fn raw_signature(&self, message_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        hmac(
            self.0.as_ref(),
            &[
                message_id.as_bytes(),
                b".",
                timestamp.to_string().as_bytes(),
                b".",
                body,
            ],
        )
    }

    /// A short, one-way check value, stored with the endpoint so that a node whose signing
    /// key differs notices before it signs anything with a secret nobody was given.
    pub fn check_value(&self) -> String {
        let value = hmac(self.0.as_ref(), &[b"keyward webhook secret check"]);
        value[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for EndpointSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EndpointSecret(…)")
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn link_tokens_are_derived_per_purpose_and_message() {
        let key = SigningKey::parse(&STANDARD.encode([7u8; 32])).unwrap();
        let a = key.link_token("password reset", b"message-1");
        assert_eq!(a.len(), 43);
        assert_eq!(
            *a,
            *key.link_token("password reset", b"message-1"),
            "the same on every node"
        );
        assert_ne!(*a, *key.link_token("invitation", b"message-1"));
        assert_ne!(*a, *key.link_token("password reset", b"message-2"));
        let other = SigningKey::parse(&STANDARD.encode([8u8; 32])).unwrap();
        assert_ne!(*a, *other.link_token("password reset", b"message-1"));
    }
    use super::*;

    /// The example of the Standard Webhooks specification and its reference libraries.
    #[test]
    fn the_specification_example_signs_as_published() {
        let secret = EndpointSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(EndpointSecret::parse("whsec_").is_none());
        assert!(EndpointSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn secrets_are_derived_per_endpoint_and_round_trip() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::parse(&key.to_text()).unwrap();
        let (a, b) = (WebhookId::generate(), WebhookId::generate());
        assert_eq!(key.secret_for(a).expose(), again.secret_for(a).expose());
        assert_ne!(key.secret_for(a).expose(), key.secret_for(b).expose());
        let other = SigningKey::generate().unwrap();
        assert_ne!(
            key.secret_for(a).check_value(),
            other.secret_for(a).check_value()
        );
        let shown = key.secret_for(a).expose();
        assert!(shown.starts_with("whsec_") && shown.len() == 6 + 44);
        let parsed = EndpointSecret::parse(&shown).unwrap();
        assert_eq!(
            parsed.sign("msg_1", 1_700_000_000, b"{}"),
            key.secret_for(a).sign("msg_1", 1_700_000_000, b"{}")
        );
        assert!(SigningKey::parse("short").is_err());
        assert!(format!("{key:?}").contains('…'));
    }

    #[test]
    fn event_sets_parse_and_store_in_a_fixed_order() {
        let set = EventTypes::parse(&["api_key.revoked", "api_key.created"]).unwrap();
        assert_eq!(set.to_storage(), "api_key.created api_key.revoked");
        assert!(set.contains(EventType::ApiKeyRevoked));
        assert!(!set.contains(EventType::CredentialLeaked));
        let error = EventTypes::parse(&["api_key.deleted"]).unwrap_err();
        assert!(error.contains("api_key.deleted") && error.contains("credential.leaked"));
    }
}

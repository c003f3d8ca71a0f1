//! Typed public ids: `org_…`, `usr_…`, `key_…`, `tok_…`, `prj_…`, `ins_…`.
//!
//! Every id is a UUIDv7 (time-ordered, so "newest first" is "largest id first") written as a
//! type prefix, `_`, and 26 characters of lowercase Crockford base32, the TypeID layout. An id
//! of the wrong type never parses, so `GET /v1/api-keys/prj_…` is simply not found.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::CredentialKind;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const ENCODED_LEN: usize = 26;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {expected} id")]
pub struct IdError {
    pub expected: &'static str,
}

/// Writes `prefix_` and the 26 base32 characters of `uuid` into `out`, returning the text.
fn encode_into<'a>(uuid: Uuid, prefix: &str, out: &'a mut [u8; 40]) -> &'a str {
    let value = uuid.as_u128();
    let prefix_len = prefix.len().min(out.len() - ENCODED_LEN - 1);
    out[..prefix_len].copy_from_slice(&prefix.as_bytes()[..prefix_len]);
    out[prefix_len] = b'_';
    let encoded = &mut out[prefix_len + 1..prefix_len + 1 + ENCODED_LEN];
    for (i, slot) in encoded.iter_mut().enumerate() {
        let shift = 125 - 5 * i;
        *slot = ALPHABET[((value >> shift) & 31) as usize];
    }
    // Prefixes are ASCII by construction and so is the alphabet.
    std::str::from_utf8(&out[..prefix_len + 1 + ENCODED_LEN]).unwrap_or_default()
}

fn encode(uuid: Uuid, prefix: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(encode_into(uuid, prefix, &mut [0; 40]))
}

/// Serializes an id as one string, without going through `fmt`: ids are in every answer.
fn serialize_id<S: Serializer>(uuid: Uuid, prefix: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(encode_into(uuid, prefix, &mut [0; 40]))
}

fn decode(encoded: &str) -> Option<Uuid> {
    let bytes = encoded.as_bytes();
    if bytes.len() != ENCODED_LEN {
        return None;
    }
    let mut value: u128 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let digit = ALPHABET.iter().position(|&a| a == b)? as u128;
        // The first character carries only the top 3 of the 128 bits.
        if i == 0 && digit > 7 {
            return None;
        }
        value = (value << 5) | digit;
    }
    Some(Uuid::from_u128(value))
}

fn split<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.strip_prefix(prefix)?.strip_prefix('_')
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            pub fn parse(s: &str) -> Result<Self, IdError> {
                split(s, $prefix)
                    .and_then(decode)
                    .map(Self)
                    .ok_or(IdError { expected: $what })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                encode(self.0, $prefix, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serialize_id(self.0, $prefix, serializer)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// An organization: the owner of keys, projects and instances.
    OrganizationId, "org", "organization"
);
impl OrganizationId {
    /// The installation itself, which holds the admin keys: a row of its own in storage (so
    /// that admin keys are credentials like the others) that is never an organization to
    /// anyone: no endpoint finds, lists or acts for it.
    pub const INSTALLATION: OrganizationId = OrganizationId(Uuid::nil());

    pub fn is_installation(&self) -> bool {
        self.0.is_nil()
    }
}

typed_id!(
    /// A person who signs in to the dashboard.
    UserId, "usr", "user"
);
typed_id!(
    /// One event of the audit log.
    EventId, "evt", "audit event"
);
typed_id!(
    /// An invitation to join an organization.
    InvitationId, "inv", "invitation"
);
typed_id!(
    /// A webhook endpoint an organization registered.
    WebhookId, "whk", "webhook endpoint"
);
typed_id!(
    /// One webhook message: its `webhook-id`, the same on every attempt and every endpoint.
    MessageId, "msg", "webhook message"
);
typed_id!(
    /// One HTTP request, named in its `X-Request-Id` answer header and its audit events.
    RequestId, "req", "request"
);

impl RequestId {
    /// A new request id, cheaper than [`Self::generate`] (every answer carries one): 64 random
    /// bits drawn once per process, then a counter passed through a bijective mix, so ids are
    /// unique but tell nothing of how many requests a node has served. Not time-ordered.
    pub fn next() -> Self {
        use std::sync::OnceLock;
        use std::sync::atomic::{AtomicU64, Ordering};
        static PROCESS: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let process = *PROCESS.get_or_init(|| {
            let mut bytes = [0u8; 8];
            // Without randomness, the time of the first request still tells processes apart.
            if getrandom::fill(&mut bytes).is_err() {
                bytes = (std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64))
                .to_le_bytes();
            }
            u64::from_le_bytes(bytes)
        });
        // SplitMix64's finalizer: a bijection of u64, so distinct counts give distinct ids.
        let mut mixed = COUNTER.fetch_add(1, Ordering::Relaxed) ^ process;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^= mixed >> 31;
        Self(Uuid::from_u128(
            (u128::from(process) << 64) | u128::from(mixed),
        ))
    }

    /// The id as text, written into `buffer` (no allocation).
    pub fn write<'a>(&self, buffer: &'a mut [u8; 40]) -> &'a str {
        encode_into(self.0, Self::PREFIX, buffer)
    }
}
typed_id!(
    /// A project of an organization.
    ProjectId, "prj", "project"
);
typed_id!(
    /// An instance, the platform resource that belongs to a project.
    InstanceId, "ins", "instance"
);

/// A credential's public id: `key_…` for an API key, `tok_…` for a project token, `adk_…` for
/// an admin key. Used to
/// list, show and revoke a credential without knowing its secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialId {
    uuid: Uuid,
    kind: CredentialKind,
}

impl CredentialId {
    pub fn generate(kind: CredentialKind) -> Self {
        Self {
            uuid: Uuid::now_v7(),
            kind,
        }
    }

    pub fn from_uuid(uuid: Uuid, kind: CredentialKind) -> Self {
        Self { uuid, kind }
    }

    pub fn as_uuid(&self) -> Uuid {
        self.uuid
    }

    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    fn prefix(kind: CredentialKind) -> &'static str {
        match kind {
            CredentialKind::ApiKey => "key",
            CredentialKind::ProjectToken => "tok",
            CredentialKind::AdminKey => "adk",
        }
    }

    /// Parses an id of the given kind only.
    pub fn parse(s: &str, kind: CredentialKind) -> Result<Self, IdError> {
        split(s, Self::prefix(kind))
            .and_then(decode)
            .map(|uuid| Self { uuid, kind })
            .ok_or(IdError {
                expected: kind.label(),
            })
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        encode(self.uuid, Self::prefix(self.kind), f)
    }
}

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for CredentialId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_id(self.uuid, Self::prefix(self.kind), serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = ProjectId::generate();
        let text = id.to_string();
        assert!(text.starts_with("prj_"));
        assert_eq!(text.len(), 4 + 26);
        assert_eq!(ProjectId::parse(&text), Ok(id));
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
    }

    #[test]
    fn matches_the_typeid_reference_encoding() {
        // From the TypeID specification's valid test vectors.
        let uuid = Uuid::parse_str("01890a5d-ac96-774b-bcce-b302099a8057").unwrap();
        assert_eq!(
            InstanceId::from_uuid(uuid).to_string(),
            "ins_01h455vb4pex5vsknk084sn02q"
        );
        assert_eq!(
            OrganizationId::from_uuid(Uuid::max()).to_string(),
            "org_7zzzzzzzzzzzzzzzzzzzzzzzzz"
        );
        assert_eq!(
            OrganizationId::from_uuid(Uuid::nil()).to_string(),
            "org_00000000000000000000000000"
        );
    }

    #[test]
    fn wrong_types_and_garbage_do_not_parse() {
        let project = ProjectId::generate().to_string();
        assert!(InstanceId::parse(&project).is_err());
        assert!(ProjectId::parse("prj_").is_err());
        assert!(ProjectId::parse("prj_8zzzzzzzzzzzzzzzzzzzzzzzzz").is_err());
        assert!(ProjectId::parse("prj_0000000000000000000000000u").is_err());
        assert!(ProjectId::parse("PRJ_00000000000000000000000000").is_err());
        assert!(ProjectId::parse(&project.to_uppercase()).is_err());
        let key = CredentialId::generate(CredentialKind::ApiKey);
        assert!(key.to_string().starts_with("key_"));
        assert_eq!(
            CredentialId::parse(&key.to_string(), CredentialKind::ApiKey),
            Ok(key)
        );
        assert!(CredentialId::parse(&key.to_string(), CredentialKind::ProjectToken).is_err());
        let token = CredentialId::generate(CredentialKind::ProjectToken);
        assert!(token.to_string().starts_with("tok_"));
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let ids: Vec<_> = (0..100).map(|_| InstanceId::generate()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let texts: Vec<_> = ids.iter().map(ToString::to_string).collect();
        assert!(texts.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn request_ids_are_distinct_and_parse_back() {
        let first = RequestId::next();
        let second = RequestId::next();
        assert_ne!(first, second);
        let mut buffer = [0; 40];
        let text = first.write(&mut buffer).to_owned();
        assert_eq!(text, first.to_string());
        assert!(text.starts_with("req_"));
        assert_eq!(RequestId::parse(&text), Ok(first));
    }
}

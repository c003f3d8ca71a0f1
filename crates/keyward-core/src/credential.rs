//! The credential format: `<brand><kind>_<32 random base62><6 base62 of CRC32>`.
//!
//! Example: `kwk_4sJ0Xq…` for an organization API key, `kwp_…` for a project token. The
//! checksum covers everything before it, so a mistyped or made-up key is rejected without a
//! database look-up, and secret scanners can recognise real keys. Only the SHA-256 of a key is
//! ever stored ([`KeyDigest`]); 190 random bits need no slow hash (NIST SP 800-63B §5.1.2.2).
//!
//! Irreversible choices: never change the alphabet, the checksum or the layout of existing
//! keys; keys already handed out must keep verifying.

use std::fmt;

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Base62 in ASCII order. Never reorder: checksums of issued keys depend on it.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random characters per key: 32 × log2(62) ≈ 190.5 bits.
pub const RANDOM_LEN: usize = 32;
/// Base62 characters of the CRC32 checksum (62^6 > 2^32).
pub const CHECKSUM_LEN: usize = 6;
/// Longest brand, so that the longest key (52 bytes) stays within one SHA-256 block (55 bytes).
pub const MAX_BRAND_LEN: usize = 12;
/// Length of a key without its brand: kind letter, `_`, random part, checksum.
const BODY_LEN: usize = 2 + RANDOM_LEN + CHECKSUM_LEN;

/// The operator's key prefix (`kw` by default): 1–12 ASCII lowercase letters or digits,
/// starting with a letter. Every node of one installation must use the same brand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Brand(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a key brand is 1 to 12 lowercase ASCII letters or digits, starting with a letter")]
pub struct BrandError;

impl Brand {
    pub fn parse(s: &str) -> Result<Self, BrandError> {
        let bytes = s.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= MAX_BRAND_LEN
            && bytes[0].is_ascii_lowercase()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(BrandError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Length of every key of this brand.
    pub fn key_len(&self) -> usize {
        self.0.len() + BODY_LEN
    }
}

impl Default for Brand {
    fn default() -> Self {
        Self("kw".to_owned())
    }
}

impl fmt::Display for Brand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Brand {
    type Err = BrandError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// What a credential is: an organization API key, a project token, or an admin key held by
/// the installation (the platform's backend) rather than an organization.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// Acts for the whole organization (`kwk_…`).
    ApiKey,
    /// Confined to one project (`kwp_…`).
    ProjectToken,
    /// Held by the installation (`kwa_…`): manages organizations and admin keys, and acts for
    /// one organization at a time with the `Keyward-Organization` header.
    AdminKey,
}

impl CredentialKind {
    /// The letter after the brand. Never change: issued keys carry it.
    pub fn letter(self) -> u8 {
        match self {
            Self::ApiKey => b'k',
            Self::ProjectToken => b'p',
            Self::AdminKey => b'a',
        }
    }

    fn from_letter(letter: u8) -> Option<Self> {
        match letter {
            b'k' => Some(Self::ApiKey),
            b'p' => Some(Self::ProjectToken),
            b'a' => Some(Self::AdminKey),
            _ => None,
        }
    }

    /// What people read: "API key", "project token".
    pub fn label(self) -> &'static str {
        match self {
            Self::ApiKey => "API key",
            Self::ProjectToken => "project token",
            Self::AdminKey => "admin key",
        }
    }

    /// The name used in JSON and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::ProjectToken => "project_token",
            Self::AdminKey => "admin_key",
        }
    }

    pub fn from_storage(s: &str) -> Option<Self> {
        match s {
            "api_key" => Some(Self::ApiKey),
            "project_token" => Some(Self::ProjectToken),
            "admin_key" => Some(Self::AdminKey),
            _ => None,
        }
    }
}

/// Where a credential stands at a moment: only `Active` ones are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialStatus {
    Active,
    Expired,
    Revoked,
}

/// When a credential works: until it expires, unless revoked first (refused whatever the
/// time) or rotated (refused from the end of its overlap). The one place that says where a
/// credential stands: stored records, the verification cache and the services all ask it.
/// Two `i64`s (16 bytes), since the verification cache holds a million.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    /// The expiry in Unix seconds, `i64::MAX` for none.
    expires: i64,
    /// From this Unix second on it is refused as revoked: `i64::MIN` once revoked, the end
    /// of the overlap once rotated, `i64::MAX` otherwise.
    refused_from: i64,
}

impl Lifetime {
    pub fn new(
        expires_at: Option<crate::Timestamp>,
        revoked_at: Option<crate::Timestamp>,
        rotation_ends_at: Option<crate::Timestamp>,
    ) -> Self {
        Self {
            expires: expires_at.map_or(i64::MAX, crate::Timestamp::unix_seconds),
            refused_from: match (revoked_at, rotation_ends_at) {
                (Some(_), _) => i64::MIN,
                (None, Some(ends_at)) => ends_at.unix_seconds(),
                (None, None) => i64::MAX,
            },
        }
    }

    /// Where it stands at `now`. Revocation (and the end of a rotation) wins over expiry: a
    /// revoked key is reported revoked even after it expires.
    pub fn status(self, now: crate::Timestamp) -> CredentialStatus {
        let now = now.unix_seconds();
        if now >= self.refused_from {
            CredentialStatus::Revoked
        } else if now >= self.expires {
            CredentialStatus::Expired
        } else {
            CredentialStatus::Active
        }
    }

    /// When it expires, if it does.
    pub fn expires_at(self) -> Option<crate::Timestamp> {
        (self.expires != i64::MAX).then(|| crate::Timestamp::from_unix_seconds(self.expires))
    }

    /// When it stops working at the latest: its expiry, or the end of its rotation if that
    /// comes first (a revoked one stopped already). What it may grant, and what verification
    /// answers report, end there.
    pub fn usable_until(self) -> Option<crate::Timestamp> {
        let end = self.expires.min(self.refused_from.max(0));
        (end != i64::MAX).then(|| crate::Timestamp::from_unix_seconds(end))
    }
}

/// Why a presented string is not a well-formed key. None of these needs a look-up, so none
/// says anything about whether some key exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("the key has the wrong length")]
    WrongLength,
    #[error("the key does not start with this server's prefix")]
    WrongBrand,
    #[error("the key has an unknown kind letter")]
    UnknownKind,
    #[error("the key contains characters that a key never has")]
    BadCharacter,
    #[error("the key's checksum does not match; it may have been mistyped or truncated")]
    ChecksumMismatch,
}

/// Checks that `presented` is a well-formed key of `brand` and returns its kind. Pure and
/// cheap: this is what rejects garbage before any hashing or look-up.
pub fn check_format(brand: &Brand, presented: &str) -> Result<CredentialKind, KeyFormatError> {
    let bytes = presented.as_bytes();
    if bytes.len() != brand.key_len() {
        return Err(KeyFormatError::WrongLength);
    }
    let (prefix, body) = bytes.split_at(brand.0.len());
    if prefix != brand.0.as_bytes() {
        return Err(KeyFormatError::WrongBrand);
    }
    let kind = CredentialKind::from_letter(body[0]).ok_or(KeyFormatError::UnknownKind)?;
    if body[1] != b'_' {
        return Err(KeyFormatError::BadCharacter);
    }
    if !body[2..].iter().all(|&b| base62_value(b).is_some()) {
        return Err(KeyFormatError::BadCharacter);
    }
    let checked_len = bytes.len() - CHECKSUM_LEN;
    let claimed = base62_decode(&bytes[checked_len..]);
    if claimed != u64::from(crc32fast::hash(&bytes[..checked_len])) {
        return Err(KeyFormatError::ChecksumMismatch);
    }
    Ok(kind)
}

fn base62_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'Z' => Some(b - b'A' + 10),
        b'a'..=b'z' => Some(b - b'a' + 36),
        _ => None,
    }
}

/// Decodes already-validated base62 digits.
fn base62_decode(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |acc, &b| {
        acc * 62 + u64::from(base62_value(b).unwrap_or(0))
    })
}

/// Appends `count` uniformly random base62 characters from the OS CSPRNG.
fn push_random_base62(out: &mut String, count: usize) -> Result<(), getrandom::Error> {
    let mut produced = 0;
    let mut pool = [0u8; 64];
    while produced < count {
        getrandom::fill(&mut pool)?;
        // Rejection sampling: 248 = 4 × 62, so `b % 62` is uniform for b < 248.
        for &b in pool.iter().filter(|&&b| b < 248) {
            if produced == count {
                break;
            }
            out.push(char::from(BASE62[usize::from(b % 62)]));
            produced += 1;
        }
    }
    // The pool held the secret's entropy.
    pool.zeroize();
    Ok(())
}

/// A random secret of 32 base62 characters (≈190 bits), for session cookies and CSRF tokens.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut token = String::with_capacity(RANDOM_LEN);
    push_random_base62(&mut token, RANDOM_LEN)?;
    Ok(token)
}

fn push_checksum(key: &mut String) {
    let mut crc = crc32fast::hash(key.as_bytes());
    let mut digits = [b'0'; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(crc % 62) as usize];
        crc /= 62;
    }
    key.extend(digits.iter().map(|&b| char::from(b)));
}

/// A key in plain text. It exists only between generation and the one response that shows
/// it; `Debug` and `Display` print a redaction, it has no `Serialize`, it cannot be copied
/// (no `Clone`), and its memory is overwritten with zeros when it is dropped (it is built in
/// a buffer of its final size, so no copy is left behind by growing it).
///
/// ```compile_fail
/// fn copy(key: &keyward_core::PlaintextKey) -> keyward_core::PlaintextKey {
///     key.clone()
/// }
/// ```
#[derive(PartialEq, Eq)]
pub struct PlaintextKey(Zeroizing<String>);

impl PlaintextKey {
    /// A new random key from the operating system's CSPRNG.
    pub fn generate(brand: &Brand, kind: CredentialKind) -> Result<Self, getrandom::Error> {
        let mut key = String::with_capacity(brand.key_len());
        key.push_str(brand.as_str());
        key.push(char::from(kind.letter()));
        key.push('_');
        push_random_base62(&mut key, RANDOM_LEN)?;
        push_checksum(&mut key);
        Ok(Self(Zeroizing::new(key)))
    }

    /// The secret itself, for the one response that shows it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }

    /// What lists show instead of the key: its prefix and its last four characters.
    pub fn hint(&self) -> String {
        hint_of(&self.0)
    }
}

impl fmt::Debug for PlaintextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlaintextKey({})", self.hint())
    }
}

impl fmt::Display for PlaintextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hint())
    }
}

/// What a key's hint is: its prefix and last four characters (`kwk_…LnXc`). For a key that
/// has passed [`check_format`] (ASCII); anything else gives an empty hint.
pub fn hint_of(key: &str) -> String {
    if !key.is_ascii() {
        return String::new();
    }
    let prefix_end = key.find('_').map_or(0, |i| i + 1);
    let tail_start = key.len().saturating_sub(4).max(prefix_end);
    format!("{}…{}", &key[..prefix_end], &key[tail_start..])
}

/// SHA-256 of a whole key: the only form in which a key is stored or looked up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

#[cfg(test)]
mod tests;

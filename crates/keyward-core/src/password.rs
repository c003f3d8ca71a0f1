//! Passwords of dashboard users: Argon2id (the argon2 crate's defaults, m=19 MiB, t=2, p=1,
//! as OWASP recommends), stored only as PHC strings.
//!
//! A new password must not be one of the 19,640 most common ones (`data/common-passwords.txt`,
//! the list Royce Williams compiled and Django ships, lowercased) nor the person's email, as
//! NIST SP 800-63B §5.1.1.2 asks.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::Email;

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// A password in plain text: redacted `Debug`, no `Display`, no `Serialize`.
#[derive(Clone)]
pub struct Password(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("a password must be at least 10 characters long")]
    TooShort,
    #[error("a password must be at most 1024 characters long")]
    TooLong,
    #[error("this password is one of the most common ones; choose another")]
    Common,
    #[error("the password must not be your email address")]
    SameAsEmail,
    #[error("the password could not be hashed")]
    Hashing,
    #[error("the operating system's random number generator failed")]
    Random,
}

impl Password {
    pub fn parse(raw: String) -> Result<Self, PasswordError> {
        let chars = raw.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            Err(PasswordError::TooShort)
        } else if chars > MAX_PASSWORD_CHARS {
            Err(PasswordError::TooLong)
        } else {
            Ok(Self(raw))
        }
    }

    /// A password someone is choosing now (sign-up, bootstrap): the length rules, and neither
    /// a common password nor `email`. Log-in uses [`Password::parse`], so that an existing
    /// password keeps working.
    pub fn parse_new(raw: String, email: &Email) -> Result<Self, PasswordError> {
        let password = Self::parse(raw)?;
        let lowered = password.0.trim().to_lowercase();
        if lowered == email.as_str()
            || email
                .as_str()
                .split_once('@')
                .is_some_and(|(local, _)| lowered == local)
        {
            return Err(PasswordError::SameAsEmail);
        }
        if is_common(&lowered) {
            return Err(PasswordError::Common);
        }
        Ok(password)
    }

    /// A random 20-character password (≈119 bits), for accounts created from the command line.
    pub fn generate() -> Result<Self, PasswordError> {
        const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut out = String::with_capacity(20);
        let mut pool = [0u8; 64];
        while out.len() < 20 {
            getrandom::fill(&mut pool).map_err(|_| PasswordError::Random)?;
            let limit = 256 - 256 % ALPHABET.len();
            for &b in pool.iter().filter(|&&b| usize::from(b) < limit) {
                if out.len() == 20 {
                    break;
                }
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
        Ok(Self(out))
    }

    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The PHC string to store.
    pub fn hash(&self) -> Result<String, PasswordError> {
        Argon2::default()
            .hash_password(self.0.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|_| PasswordError::Hashing)
    }

    /// Whether this password matches a stored PHC string. A malformed hash never matches.
    pub fn verify(&self, stored_hash: &str) -> bool {
        PasswordHash::new(stored_hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(self.0.as_bytes(), &parsed)
                .is_ok()
        })
    }
}

/// Whether `lowered` is on the bundled list of common passwords.
fn is_common(lowered: &str) -> bool {
    static SORTED: OnceLock<Vec<&'static str>> = OnceLock::new();
    let sorted = SORTED.get_or_init(|| {
        let mut list: Vec<&str> = include_str!("../data/common-passwords.txt")
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect();
        list.sort_unstable();
        list
    });
    sorted.binary_search(&lowered).is_ok()
}

/// Argon2 working memory (19 MiB for the default parameters) that a thread hashing many
/// passwords keeps and reuses: allocating it afresh for every hash leaves the allocator
/// holding tens of megabytes per thread that ever hashed.
pub struct HashMemory(Vec<Block>);

impl Default for HashMemory {
    fn default() -> Self {
        Self(vec![Block::new(); Params::default().block_count()])
    }
}

/// The most a stored hash may ask of a verification: four times the default memory and
/// passes. Keyward writes only default hashes; this stops a planted one from exhausting
/// memory or time.
const MAX_MEMORY_KIB: u32 = 4 * Params::DEFAULT_M_COST;
const MAX_PASSES: u32 = 4 * Params::DEFAULT_T_COST;
const MAX_LANES: u32 = 4;

impl HashMemory {
    /// The first `params.block_count()` blocks, growing for larger parameters.
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let count = params.block_count();
        if self.0.len() < count {
            self.0.resize(count, Block::new());
        }
        &mut self.0[..count]
    }

    /// Back to the default size, if a larger hash made it grow.
    fn shrink(&mut self) {
        let default = Params::default().block_count();
        if self.0.len() > default {
            self.0.truncate(default);
            self.0.shrink_to_fit();
        }
    }
}

impl Password {
    /// [`Password::hash`], in `memory` instead of fresh memory. The same PHC string format.
    pub fn hash_in(&self, memory: &mut HashMemory) -> Result<String, PasswordError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|_| PasswordError::Random)?;
        let params = Params::default();
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        Argon2::default()
            .hash_password_into_with_memory(
                self.0.as_bytes(),
                &salt,
                &mut output,
                memory.blocks(&params),
            )
            .map_err(|_| PasswordError::Hashing)?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|_| PasswordError::Hashing)?,
            salt: Some(Salt::new(&salt).map_err(|_| PasswordError::Hashing)?),
            hash: Some(Output::new(&output).map_err(|_| PasswordError::Hashing)?),
        };
        Ok(hash.to_string())
    }

    /// [`Password::verify`], in `memory` instead of fresh memory.
    pub fn verify_in(&self, stored_hash: &str, memory: &mut HashMemory) -> bool {
        let Ok(parsed) = PasswordHash::new(stored_hash) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
            return false;
        };
        let Ok(version) = parsed
            .version
            .map_or(Ok(Version::default()), Version::try_from)
        else {
            return false;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        if params.m_cost() > MAX_MEMORY_KIB
            || params.t_cost() > MAX_PASSES
            || params.p_cost() > MAX_LANES
        {
            return false;
        }
        let mut output = vec![0u8; expected.len()];
        let computed = Argon2::new(algorithm, version, params.clone())
            .hash_password_into_with_memory(
                self.0.as_bytes(),
                salt,
                &mut output,
                memory.blocks(&params),
            );
        memory.shrink();
        // `Output`'s equality is constant-time.
        computed.is_ok() && Output::new(&output).is_ok_and(|output| output == *expected)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_wrong_passwords_do_not() {
        let password = Password::parse("correct horse battery".into()).unwrap();
        let hash = password.hash().unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(password.verify(&hash));
        assert!(
            !Password::parse("correct horse battery!".into())
                .unwrap()
                .verify(&hash)
        );
        assert!(!password.verify("not a hash"));
    }

    #[test]
    fn length_rules_and_redaction() {
        assert_eq!(
            Password::parse("short".into()).unwrap_err(),
            PasswordError::TooShort
        );
        assert!(Password::parse("ten chars!".into()).is_ok());
        assert_eq!(
            Password::parse("x".repeat(1025)).unwrap_err(),
            PasswordError::TooLong
        );
        let generated = Password::generate().unwrap();
        assert_eq!(generated.expose_secret().len(), 20);
        assert_eq!(format!("{generated:?}"), "Password(redacted)");
    }

    #[test]
    fn new_passwords_are_neither_common_nor_the_email() {
        let email = Email::parse("ada.lovelace@example.com").unwrap();
        for common in ["1234567890", "qwertyuiop", "Password123", "iloveyou12"] {
            assert_eq!(
                Password::parse_new(common.into(), &email).unwrap_err(),
                PasswordError::Common,
                "{common}"
            );
            assert!(
                Password::parse(common.into()).is_ok(),
                "log-in still parses it"
            );
        }
        for own in [
            "ada.lovelace@example.com",
            "Ada.Lovelace@Example.com",
            "ada.lovelace",
        ] {
            assert_eq!(
                Password::parse_new(own.into(), &email).unwrap_err(),
                PasswordError::SameAsEmail,
                "{own}"
            );
        }
        assert!(Password::parse_new("correct horse battery staple".into(), &email).is_ok());
        assert_eq!(
            Password::parse_new("short".into(), &email).unwrap_err(),
            PasswordError::TooShort
        );
    }

    #[test]
    fn the_bundled_list_holds_at_least_ten_thousand_passwords() {
        assert!(include_str!("../data/common-passwords.txt").lines().count() >= 10_000);
    }

    #[test]
    fn hashing_in_reused_memory_matches_the_standard_format() {
        let mut memory = HashMemory::default();
        let password = Password::parse("correct horse battery".into()).unwrap();
        let wrong = Password::parse("correct horse battery!".into()).unwrap();
        let ours = password.hash_in(&mut memory).unwrap();
        let standard = password.hash().unwrap();
        assert_eq!(ours.len(), standard.len());
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        for hash in [&ours, &standard] {
            assert!(password.verify(hash), "the crate verifies {hash}");
            assert!(password.verify_in(hash, &mut memory), "we verify {hash}");
            assert!(!wrong.verify(hash));
            assert!(!wrong.verify_in(hash, &mut memory));
        }
        assert!(!password.verify_in("not a hash", &mut memory));
        let greedy = standard.replace("m=19456", "m=4194304");
        assert!(
            !password.verify_in(&greedy, &mut memory),
            "no 4 GiB verification"
        );
        assert!(!password.verify_in("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA", &mut memory));
    }
}

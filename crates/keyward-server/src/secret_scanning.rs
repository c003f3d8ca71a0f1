//! GitHub's secret-scanning partner program: the public keys GitHub signs its reports with,
//! and the check of a report's signature (ECDSA P-256 with SHA-256 over the raw body).
//!
//! The keys come from the document GitHub publishes
//! (`{"public_keys": [{"key_identifier", "key", "is_current"}]}`), saved as a file by the
//! operator (`--github-keys-file`); the file is read again when it changes, so a cron job
//! that fetches the document keeps the keys current without a restart.

use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

#[derive(Deserialize)]
struct Document {
    public_keys: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    key_identifier: String,
    key: String,
    #[serde(default)]
    is_current: bool,
}

struct PublicKey {
    identifier: String,
    key: VerifyingKey,
    current: bool,
}

/// GitHub's signing keys, from the operator's file.
pub struct GithubKeys {
    file: PathBuf,
    keys: RwLock<Vec<PublicKey>>,
    read_at: Mutex<Option<SystemTime>>,
}

/// Reads GitHub's document; every key must parse.
fn parse(text: &str) -> Result<Vec<PublicKey>, String> {
    let document: Document = serde_json::from_str(text)
        .map_err(|e| format!("not GitHub's public key document ({e})"))?;
    document
        .public_keys
        .into_iter()
        .map(|entry| {
            let key = VerifyingKey::from_public_key_pem(&entry.key).map_err(|_| {
                format!(
                    "the key {} is not an ECDSA P-256 public key in PEM",
                    entry.key_identifier
                )
            })?;
            Ok(PublicKey {
                identifier: entry.key_identifier,
                key,
                current: entry.is_current,
            })
        })
        .collect()
}

/// Fetches GitHub's document from `url` and, if it holds usable keys, writes it to `file`
/// (whole, by a rename), where [`GithubKeys`] reads it.
pub async fn fetch_into(url: &str, file: &std::path::Path) -> Result<usize, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .user_agent(concat!("Keyward/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())?;
    let answer = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot fetch {url}: {}", e.without_url()))?;
    if !answer.status().is_success() {
        return Err(format!("{url} answered {}", answer.status()));
    }
    let text = answer
        .text()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let keys = parse(&text).map_err(|e| format!("{url}: {e}"))?.len();
    let partial = file.with_extension("partial");
    std::fs::write(&partial, &text)
        .and_then(|()| std::fs::rename(&partial, file))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(keys)
}

/// Fetches the document into `file` every `every`, keeping the last good one on failure.
pub async fn refresh_periodically(url: String, file: PathBuf, every: std::time::Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match fetch_into(&url, &file).await {
            Ok(keys) => tracing::debug!(keys, "fetched GitHub's public keys"),
            Err(error) => {
                tracing::warn!(%error, "could not refresh GitHub's public keys; keeping the file")
            }
        }
    }
}

impl std::fmt::Debug for GithubKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubKeys")
            .field("file", &self.file)
            .finish()
    }
}

impl GithubKeys {
    /// Reads `file`, which must hold GitHub's document.
    pub fn load(file: PathBuf) -> Result<Self, String> {
        let modified = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let keys = parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(Self {
            file,
            keys: RwLock::new(keys),
            read_at: Mutex::new(modified),
        })
    }

    /// Reads the file again if it changed since; a file that no longer parses leaves the
    /// keys as they were (and says so in the log).
    fn refresh(&self) {
        let modified = std::fs::metadata(&self.file)
            .and_then(|m| m.modified())
            .ok();
        let mut read_at = self.read_at.lock().unwrap_or_else(|p| p.into_inner());
        if modified.is_none() || modified == *read_at {
            return;
        }
        *read_at = modified;
        match std::fs::read_to_string(&self.file)
            .map_err(|e| e.to_string())
            .and_then(|text| parse(&text))
        {
            Ok(keys) => {
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
                tracing::info!(file = %self.file.display(), "GitHub's public keys read again");
            }
            Err(error) => tracing::error!(
                file = %self.file.display(), %error,
                "GitHub's public key file changed but cannot be used; keeping the keys read before"
            ),
        }
    }

    /// Whether `signature` (base64 of a DER ECDSA signature) is the current key
    /// `identifier`'s over exactly `body`. A key GitHub marks as not current is not accepted.
    pub fn verify(&self, identifier: &str, signature: &str, body: &[u8]) -> bool {
        self.refresh();
        let Ok(der) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        let Ok(signature) = Signature::from_der(&der) else {
            return false;
        };
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .find(|key| key.identifier == identifier && key.current)
            .is_some_and(|key| key.key.verify(body, &signature).is_ok())
    }
}

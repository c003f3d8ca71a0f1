//! `keyward scan`: finds this installation's keys in files and standard input, by their
//! format and checksum alone (no server needed), and reports them with `--revoke`.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use keyward_core::credential::{check_format, hint_of};
use keyward_core::{Brand, CredentialKind};
use serde_json::json;

/// Find keys in files: every string with this installation's key format and a valid checksum.
///
/// Directories are walked recursively, skipping what `.gitignore`, `.ignore` and
/// `.git/info/exclude` exclude, and `.git` itself; hidden files such as `.env` are read.
/// Each key found is printed as `FILE:LINE: KIND HINT`, never whole. Exits 1 when any key was
/// found, 0 when none, 2 on a usage error.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Files or directories to scan; `-` for standard input. Without any: standard input
    /// when it is not a terminal, else the current directory.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// The brand to look for: the installation's.
    #[command(flatten)]
    brand: crate::BrandArgs,

    /// Report every key found to the server's public revocation endpoint
    /// (`POST /v1/credentials/revoke`), which revokes each one that is live.
    #[arg(long)]
    revoke: bool,

    /// The Keyward server, for --revoke.
    #[arg(
        long,
        env = "KEYWARD_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    url: String,

    /// Print one JSON object per key found (`file`, `line`, `kind`, `hint`).
    #[arg(long)]
    json: bool,
}

/// A key found: where, what, and the key itself (kept in memory for `--revoke` only).
pub struct Finding {
    pub line: usize,
    pub kind: CredentialKind,
    pub key: String,
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Every key of `brand` in `data`: the brand and kind (`kwk_`, `kwp_`) at a word start,
/// then exactly the key's length of base62 characters, then no more word characters, and a
/// checksum that holds. Binary data is searched the same way.
pub fn find_keys(brand: &Brand, data: &[u8]) -> Vec<Finding> {
    let prefix = brand.as_str().as_bytes();
    let length = brand.key_len();
    let mut found = Vec::new();
    let mut line = 1;
    let mut counted_to = 0;
    let mut at = 0;
    while at + length <= data.len() {
        let Some(offset) = data[at..]
            .windows(prefix.len())
            .position(|window| window == prefix)
        else {
            break;
        };
        let start = at + offset;
        at = start + 1;
        if start + length > data.len() {
            break;
        }
        if start > 0 && is_word(data[start - 1]) {
            continue;
        }
        let end = start + length;
        if data.get(end).is_some_and(|byte| is_word(*byte)) {
            continue;
        }
        let Ok(candidate) = std::str::from_utf8(&data[start..end]) else {
            continue;
        };
        let Ok(kind) = check_format(brand, candidate) else {
            continue;
        };
        line += data[counted_to..start]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        counted_to = start;
        found.push(Finding {
            line,
            kind,
            key: candidate.to_owned(),
        });
        at = end;
    }
    found
}

/// The files under `path` (itself, if a file), skipping ignored ones and `.git`.
fn files_under(path: &Path) -> Vec<Result<PathBuf, String>> {
    let walk = ignore::WalkBuilder::new(path)
        .hidden(false)
        .require_git(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build();
    walk.filter_map(|entry| match entry {
        Ok(entry) if entry.file_type().is_some_and(|t| t.is_file()) => Some(Ok(entry.into_path())),
        Ok(_) => None,
        Err(error) => Some(Err(error.to_string())),
    })
    .collect()
}

fn kind_name(kind: CredentialKind) -> &'static str {
    kind.as_str()
}

pub async fn run(args: ScanArgs) -> ExitCode {
    let mut sources: Vec<Option<PathBuf>> = Vec::new();
    if args.paths.is_empty() {
        if std::io::stdin().is_terminal() {
            sources.push(Some(PathBuf::from(".")));
        } else {
            sources.push(None);
        }
    }
    for path in &args.paths {
        if path.as_os_str() == "-" {
            sources.push(None);
        } else {
            sources.push(Some(path.clone()));
        }
    }
    let mut keys = Vec::new();
    let mut problems = false;
    for source in sources {
        let inputs: Vec<(String, Result<Vec<u8>, String>)> = match source {
            None => {
                let mut data = Vec::new();
                let read = std::io::stdin()
                    .read_to_end(&mut data)
                    .map(|_| data)
                    .map_err(|e| e.to_string());
                vec![("(stdin)".to_owned(), read)]
            }
            Some(path) => {
                if !path.exists() {
                    eprintln!("error: {}: no such file or directory", path.display());
                    return ExitCode::from(2);
                }
                files_under(&path)
                    .into_iter()
                    .map(|file| match file {
                        Ok(file) => {
                            let data = std::fs::read(&file).map_err(|e| e.to_string());
                            (file.display().to_string(), data)
                        }
                        Err(error) => (path.display().to_string(), Err(error)),
                    })
                    .collect()
            }
        };
        for (name, data) in inputs {
            let data = match data {
                Ok(data) => data,
                Err(error) => {
                    eprintln!("warning: {name}: {error}");
                    problems = true;
                    continue;
                }
            };
            for finding in find_keys(&args.brand.key_brand, &data) {
                let hint = hint_of(&finding.key);
                if args.json {
                    println!(
                        "{}",
                        json!({
                            "file": name,
                            "line": finding.line,
                            "kind": kind_name(finding.kind),
                            "hint": hint,
                        })
                    );
                } else {
                    println!(
                        "{name}:{}: {} {hint}",
                        finding.line,
                        kind_name(finding.kind)
                    );
                }
                keys.push(finding.key);
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    if problems {
        eprintln!("warning: some files could not be read (see above)");
    }
    if keys.is_empty() {
        return ExitCode::SUCCESS;
    }
    if args.revoke {
        match report(&args.url, &keys).await {
            Ok(()) => eprintln!(
                "Reported {} key{} to {}: each live one is revoked.",
                keys.len(),
                if keys.len() == 1 { "" } else { "s" },
                args.url
            ),
            Err(error) => {
                eprintln!("error: could not report the keys to {}: {error}", args.url);
                return ExitCode::from(2);
            }
        }
    } else {
        eprintln!(
            "Found {} key{}. Revoke {} (keyward scan --revoke), then remove {} from the files \
             and their history.",
            keys.len(),
            if keys.len() == 1 { "" } else { "s" },
            if keys.len() == 1 { "it" } else { "them" },
            if keys.len() == 1 { "it" } else { "them" },
        );
    }
    ExitCode::from(1)
}

/// Sends the keys to the revocation endpoint, 1,000 at a time.
async fn report(url: &str, keys: &[String]) -> Result<(), String> {
    let client = reqwest::Client::new();
    let endpoint = format!("{}/v1/credentials/revoke", url.trim_end_matches('/'));
    for batch in keys.chunks(1_000) {
        let answer = client
            .post(&endpoint)
            .json(&json!({ "credentials": batch }))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if answer.status() != reqwest::StatusCode::ACCEPTED {
            return Err(format!("the server answered {}", answer.status()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::PlaintextKey;

    fn key(brand: &Brand, kind: CredentialKind) -> String {
        PlaintextKey::generate(brand, kind)
            .unwrap()
            .expose_secret()
            .to_owned()
    }

    #[test]
    fn keys_are_found_with_their_line_and_kind() {
        let brand = Brand::default();
        let (api, token) = (
            key(&brand, CredentialKind::ApiKey),
            key(&brand, CredentialKind::ProjectToken),
        );
        let text = format!("one\nKEYWARD_API_KEY={api}\n\"token\": \"{token}\", again {api}\n");
        let found = find_keys(&brand, text.as_bytes());
        let seen: Vec<(usize, CredentialKind)> = found.iter().map(|f| (f.line, f.kind)).collect();
        assert_eq!(
            seen,
            [
                (2, CredentialKind::ApiKey),
                (3, CredentialKind::ProjectToken),
                (3, CredentialKind::ApiKey)
            ]
        );
        assert_eq!(found[0].key, api);
    }

    #[test]
    fn look_alikes_are_not_keys() {
        let brand = Brand::default();
        let real = key(&brand, CredentialKind::ApiKey);
        let mut wrong_checksum = real.clone();
        let last = wrong_checksum.pop().unwrap();
        wrong_checksum.push(if last == 'A' { 'B' } else { 'A' });
        let longer = format!("{real}x");
        let inside = format!("x{real}");
        let other_brand = key(&Brand::parse("acme").unwrap(), CredentialKind::ApiKey);
        for text in [
            wrong_checksum,
            longer,
            inside,
            other_brand,
            real[..real.len() - 1].to_owned(),
        ] {
            assert!(find_keys(&brand, text.as_bytes()).is_empty(), "{text}");
        }
    }

    #[test]
    fn an_installation_brand_of_its_own_is_searched_for() {
        let acme = Brand::parse("acme").unwrap();
        let key = key(&acme, CredentialKind::ProjectToken);
        let found = find_keys(&acme, format!("TOKEN={key}").as_bytes());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, CredentialKind::ProjectToken);
        assert!(find_keys(&Brand::default(), key.as_bytes()).is_empty());
    }

    #[test]
    fn binary_data_is_searched_without_false_positives_or_panics() {
        let brand = Brand::default();
        // A deterministic pseudo-random megabyte, with brand prefixes sprinkled in.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut data: Vec<u8> = (0..1 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        for i in (0..data.len() - 8).step_by(4096) {
            data[i..i + 4].copy_from_slice(b"kwk_");
        }
        assert!(find_keys(&brand, &data).is_empty());
        let real = key(&brand, CredentialKind::ApiKey);
        data.extend_from_slice(b"\0");
        data.extend_from_slice(real.as_bytes());
        let found = find_keys(&brand, &data);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key, real);
        assert!(find_keys(&brand, b"").is_empty());
        assert!(find_keys(&brand, b"kw").is_empty());
    }
}

//! `keyward scan`: finds this installation's keys in files and standard input, by their
//! format and checksum alone (no server needed), and reports them with `--revoke`.

use std::collections::BTreeSet;
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

/// How much of a file is read at once: the scan's memory, whatever the size of the files.
const CHUNK: usize = 64 * 1024;

/// Finds the keys of a brand in a stream fed chunk by chunk, holding only what a key starting
/// near the end of a chunk needs of the next one. A key is the brand and kind (`kwk_`,
/// `kwp_`) followed by exactly the key's length of characters whose checksum holds, wherever
/// it is: after a word character too (`API_KEY_kwk_…`, `key%3Dkwk_…`, a JSON `\nkwk_…`
/// escape), since the checksum, not its surroundings, tells a key from a look-alike. Binary
/// data is searched the same way.
pub struct KeyFinder<'b> {
    brand: &'b Brand,
    /// Bytes fed whose keys are not all decided yet.
    pending: Vec<u8>,
    /// The line of `pending`'s first byte.
    line: usize,
}

impl<'b> KeyFinder<'b> {
    pub fn new(brand: &'b Brand) -> Self {
        Self {
            brand,
            pending: Vec::with_capacity(CHUNK + brand.key_len()),
            line: 1,
        }
    }

    /// The keys that `bytes`, after everything fed before, completes.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Finding> {
        self.pending.extend_from_slice(bytes);
        self.decide(false)
    }

    /// The keys in what is left at the end of the stream.
    pub fn finish(mut self) -> Vec<Finding> {
        self.decide(true)
    }

    /// Finds the keys that start where a whole key has been fed (anywhere, at the end), and
    /// keeps the rest for the next chunk.
    fn decide(&mut self, at_end: bool) -> Vec<Finding> {
        let prefix = self.brand.as_str().as_bytes();
        let length = self.brand.key_len();
        let data = &self.pending;
        // Starts before `limit` are decided now: a key starting there was fed whole.
        let limit = match at_end {
            true => data.len(),
            false => data.len().saturating_sub(length - 1),
        };
        let mut found = Vec::new();
        let mut at = 0;
        let mut counted_to = 0;
        while at < limit {
            let Some(offset) = data[at..]
                .windows(prefix.len())
                .position(|window| window == prefix)
            else {
                break;
            };
            let start = at + offset;
            if start >= limit || start + length > data.len() {
                break;
            }
            at = start + 1;
            let Ok(candidate) = std::str::from_utf8(&data[start..start + length]) else {
                continue;
            };
            let Ok(kind) = check_format(self.brand, candidate) else {
                continue;
            };
            self.line += newlines(&data[counted_to..start]);
            counted_to = start;
            found.push(Finding {
                line: self.line,
                kind,
                key: candidate.to_owned(),
            });
            at = start + length;
        }
        let done = at.max(limit).min(data.len());
        self.line += newlines(&data[counted_to..done]);
        self.pending.drain(..done);
        found
    }
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|byte| **byte == b'\n').count()
}

/// Every key of `brand` in what `input` reads, read [`CHUNK`] bytes at a time; `report` is
/// told of each as soon as it is found.
fn scan_stream(
    brand: &Brand,
    mut input: impl Read,
    mut report: impl FnMut(Finding),
) -> std::io::Result<()> {
    let mut finder = KeyFinder::new(brand);
    let mut chunk = vec![0; CHUNK];
    loop {
        let read = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        finder
            .feed(&chunk[..read])
            .into_iter()
            .for_each(&mut report);
    }
    finder.finish().into_iter().for_each(report);
    Ok(())
}

/// The files under `path` (itself, if a file), skipping ignored ones and `.git`, one at a
/// time as the walk finds them.
fn files_under(path: &Path) -> impl Iterator<Item = Result<PathBuf, String>> {
    ignore::WalkBuilder::new(path)
        .hidden(false)
        .require_git(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build()
        .filter_map(|entry| match entry {
            Ok(entry) if entry.file_type().is_some_and(|t| t.is_file()) => {
                Some(Ok(entry.into_path()))
            }
            Ok(_) => None,
            Err(error) => Some(Err(error.to_string())),
        })
}

/// `FILE:LINE: KIND HINT` (or the same as JSON): never the key itself.
fn print_finding(name: &str, finding: &Finding, json: bool) {
    let hint = hint_of(&finding.key);
    let kind = finding.kind.as_str();
    if json {
        println!(
            "{}",
            json!({ "file": name, "line": finding.line, "kind": kind, "hint": hint })
        );
    } else {
        println!("{name}:{}: {kind} {hint}", finding.line);
    }
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
    // Distinct keys found, for --revoke: what the scan holds beyond one chunk of one file.
    let mut keys = BTreeSet::new();
    let mut problems = false;
    let brand = &args.brand.key_brand;
    for source in sources {
        // Whether `input` was read to its end.
        let mut scan = |name: &str, input: &mut dyn Read| {
            let read = scan_stream(brand, input, |finding| {
                print_finding(name, &finding, args.json);
                keys.insert(finding.key);
            });
            read.map_err(|error| eprintln!("warning: {name}: {error}"))
                .is_ok()
        };
        match source {
            None => problems |= !scan("(stdin)", &mut std::io::stdin().lock()),
            Some(path) => {
                if !path.exists() {
                    eprintln!("error: {}: no such file or directory", path.display());
                    return ExitCode::from(2);
                }
                for file in files_under(&path) {
                    let file = match file {
                        Ok(file) => file,
                        Err(error) => {
                            eprintln!("warning: {}: {error}", path.display());
                            problems = true;
                            continue;
                        }
                    };
                    let name = file.display().to_string();
                    match std::fs::File::open(&file) {
                        Ok(mut opened) => problems |= !scan(&name, &mut opened),
                        Err(error) => {
                            eprintln!("warning: {name}: {error}");
                            problems = true;
                        }
                    }
                }
            }
        }
    }
    let keys: Vec<String> = keys.into_iter().collect();
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

    /// Every key of `brand` in `data`, fed at once.
    fn find_keys(brand: &Brand, data: &[u8]) -> Vec<Finding> {
        let mut finder = KeyFinder::new(brand);
        let mut found = finder.feed(data);
        found.extend(finder.finish());
        found
    }

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
        let other_brand = key(&Brand::parse("acme").unwrap(), CredentialKind::ApiKey);
        let shifted = format!("kwk_{}", &real[5..]);
        for text in [
            wrong_checksum,
            other_brand,
            real[..real.len() - 1].to_owned(),
            shifted,
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

    #[test]
    fn keys_are_found_whatever_surrounds_them() {
        let brand = Brand::default();
        let real = key(&brand, CredentialKind::ApiKey);
        for text in [
            format!("https://x.example/?key%3D{real}"),
            format!("{{\"log\": \"started\\n{real}\"}}"),
            format!("API_KEY_{real}"),
            format!("x{real}"),
            format!("{real}x"),
            format!("9{real}_suffix"),
        ] {
            let found = find_keys(&brand, text.as_bytes());
            assert_eq!(found.len(), 1, "{text}");
            assert_eq!(found[0].key, real);
        }
    }

    /// A reader that yields `total` bytes of filler in pieces of `piece`, with `key` at each
    /// offset of `at`, without ever holding the whole.
    struct Generated<'k> {
        key: &'k [u8],
        at: Vec<usize>,
        position: usize,
        total: usize,
        piece: usize,
    }

    impl Read for Generated<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let n = buffer.len().min(self.piece).min(self.total - self.position);
            for (i, byte) in buffer[..n].iter_mut().enumerate() {
                let offset = self.position + i;
                *byte = self
                    .at
                    .iter()
                    .find(|start| (**start..**start + self.key.len()).contains(&offset))
                    .map_or(if offset % 80 == 79 { b'\n' } else { b'k' }, |start| {
                        self.key[offset - start]
                    });
            }
            self.position += n;
            Ok(n)
        }
    }

    #[test]
    fn a_stream_is_scanned_in_bounded_memory_and_keys_across_chunks_are_found() {
        let brand = Brand::default();
        let real = key(&brand, CredentialKind::ProjectToken);
        let total = 40 * CHUNK + 17;
        // At the very start, across every kind of chunk boundary, and at the very end.
        let mut at = vec![0, CHUNK - 1, 2 * CHUNK - real.len() + 1, 3 * CHUNK - 4];
        at.push(total - real.len());
        for piece in [CHUNK, 1000, 7] {
            let input = Generated {
                key: real.as_bytes(),
                at: at.clone(),
                position: 0,
                total,
                piece,
            };
            let mut finder = KeyFinder::new(&brand);
            let mut found = Vec::new();
            let mut chunk = vec![0; CHUNK];
            let mut input = input;
            loop {
                let read = input.read(&mut chunk).unwrap();
                if read == 0 {
                    break;
                }
                found.extend(finder.feed(&chunk[..read]));
                assert!(
                    finder.pending.len() < real.len(),
                    "only the undecided tail is kept"
                );
                assert!(finder.pending.capacity() <= CHUNK + real.len());
            }
            found.extend(finder.finish());
            // Line breaks are the filler's every 80th byte, where no key covers it.
            let covered = |p: usize| {
                at.iter()
                    .any(|start| (*start..start + real.len()).contains(&p))
            };
            let lines: Vec<usize> = at
                .iter()
                .map(|offset| {
                    1 + (0..*offset)
                        .filter(|p| p % 80 == 79 && !covered(*p))
                        .count()
                })
                .collect();
            assert_eq!(
                found.iter().map(|f| f.line).collect::<Vec<_>>(),
                lines,
                "{piece}"
            );
            assert!(found.iter().all(|f| f.key == real));
        }
    }
}

//! The `keyward` binary as a user runs it: help, bootstrap, serve, graceful shutdown.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use keyward_core::{CredentialId, CredentialKind, OrganizationId};
use serde_json::{Value, json};
use tempfile::TempDir;

fn keyward() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
    for variable in [
        "KEYWARD_LISTEN",
        "KEYWARD_DATABASE_URL",
        "KEYWARD_KEY_BRAND",
        "KEYWARD_LAST_USED_FLUSH_SECONDS",
        "KEYWARD_LOG",
        "KEYWARD_CONFIG",
        "KEYWARD_ORGANIZATION",
    ] {
        command.env_remove(variable);
    }
    command
}

fn database_url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("data/keyward.db").display())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn bootstrap_json(url: &str, org: &str, email: &str) -> Value {
    let output = keyward()
        .args(["bootstrap", "--org", org, "--email", email, "--json"])
        .args(["--database-url", url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A `keyward serve` child process and the address it logged.
struct Server {
    child: Child,
    address: String,
    log: mpsc::Receiver<String>,
}

impl Server {
    fn start(dir: &TempDir, extra: &[&str]) -> Self {
        Self::start_on(&database_url(dir), dir, extra)
    }

    fn start_on(url: &str, dir: &TempDir, extra: &[&str]) -> Self {
        let mut command = keyward();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
            .arg(url)
            .args(extra);
        Self::spawn(command, dir)
    }

    /// Runs `command` (a `keyward serve`) in `dir` and waits for the address it logs.
    fn spawn(mut command: Command, dir: &TempDir) -> Self {
        let mut child = command
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (lines, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        // From here on, `Drop` stops the child whatever happens.
        let mut server = Self {
            child,
            address: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.address.is_empty() {
            let line = server
                .log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the server logs the address it serves");
            if let Some((_, address)) = line.split_once("listening on http://") {
                server.address = address.trim().to_owned();
            }
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// Sends SIGTERM and returns the exit status and the rest of the log.
    fn terminate(&mut self) -> (std::process::ExitStatus, String) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The process has gone, but the reader thread may still hold its last lines: read
        // until it reaches the end of the pipe (and drops its sender).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut rest = Vec::new();
        while let Ok(line) = self
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            rest.push(line);
        }
        (status, rest.join("\n"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn help_explains_every_command_and_option() {
    let top = keyward().arg("--help").output().unwrap();
    assert!(top.status.success());
    let top = text(&top.stdout);
    for word in [
        "serve",
        "migrate",
        "bootstrap",
        "API key",
        "keys",
        "projects",
        "tokens",
        "instances",
        "whoami",
        "config",
        "KEYWARD_API_KEY",
        "admin-keys",
        "organizations",
    ] {
        assert!(top.contains(word), "--help lacks {word}:\n{top}");
    }
    let keys = text(
        &keyward()
            .args(["keys", "list", "--help"])
            .output()
            .unwrap()
            .stdout,
    );
    for word in ["--organization", "KEYWARD_ORGANIZATION", "ext:"] {
        assert!(
            keys.contains(word),
            "keys list --help lacks {word}:\n{keys}"
        );
    }
    let serve = text(&keyward().args(["serve", "--help"]).output().unwrap().stdout);
    for word in [
        "--listen",
        "KEYWARD_LISTEN",
        "127.0.0.1:8080",
        "--database-url",
        "KEYWARD_DATABASE_URL",
        "sqlite://./keyward-data/keyward.db",
        "--key-brand",
        "KEYWARD_KEY_BRAND",
        "--config",
        "KEYWARD_CONFIG",
        "keyward.toml",
        "SIGTERM",
    ] {
        assert!(serve.contains(word), "serve --help lacks {word}:\n{serve}");
    }
    let bootstrap = text(
        &keyward()
            .args(["bootstrap", "--help"])
            .output()
            .unwrap()
            .stdout,
    );
    for word in [
        "--org",
        "--email",
        "--password-stdin",
        "--json",
        "shown once",
    ] {
        assert!(
            bootstrap.contains(word),
            "bootstrap --help lacks {word}:\n{bootstrap}"
        );
    }
}

#[test]
fn usage_errors_exit_with_2_and_say_why() {
    let no_email = keyward()
        .args(["bootstrap", "--org", "Acme"])
        .output()
        .unwrap();
    assert_eq!(no_email.status.code(), Some(2));
    assert!(text(&no_email.stderr).contains("--email"));
    let bad_brand = keyward()
        .args(["serve", "--key-brand", "Bad_Brand"])
        .output()
        .unwrap();
    assert_eq!(bad_brand.status.code(), Some(2));
    assert!(text(&bad_brand.stderr).contains("brand"));
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_configuration_file_sets_serve_and_flags_and_the_environment_override_it() {
    let dir = TempDir::new().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("keyward.toml"),
        format!(
            "# Keyward\nlisten = \"127.0.0.1:{port}\"\ndatabase_url = \"{}\"\n\
             cache_max_age_seconds = 30\nlog = \"info\"\n",
            database_url(&dir)
        ),
    )
    .unwrap();

    // ./keyward.toml is read when present.
    let mut command = keyward();
    command.arg("serve");
    let mut server = Server::spawn(command, &dir);
    assert_eq!(server.address, format!("127.0.0.1:{port}"));
    assert!(server.terminate().0.success());

    // A flag, then the environment, wins over the file.
    let mut command = keyward();
    command.args(["serve", "--listen", "127.0.0.1:0"]);
    let flagged = Server::spawn(command, &dir);
    assert_ne!(flagged.address, format!("127.0.0.1:{port}"));
    drop(flagged);
    let mut command = keyward();
    command.arg("serve").env("KEYWARD_LISTEN", "127.0.0.1:0");
    let from_env = Server::spawn(command, &dir);
    assert_ne!(from_env.address, format!("127.0.0.1:{port}"));
    drop(from_env);

    // --config (or KEYWARD_CONFIG) names another file, which must exist.
    let other = free_port();
    let named = dir.path().join("other.toml");
    std::fs::write(&named, format!("listen = \"127.0.0.1:{other}\"\n")).unwrap();
    let mut command = keyward();
    command.arg("serve").env("KEYWARD_CONFIG", &named);
    let configured = Server::spawn(command, &dir);
    assert_eq!(configured.address, format!("127.0.0.1:{other}"));
    drop(configured);
    let missing = keyward()
        .args(["serve", "--config", "absent.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).starts_with("error: absent.toml: cannot read the configuration file"),
        "{}",
        text(&missing.stderr)
    );

    // A logo that is not an image stops the server before it listens.
    std::fs::write(dir.path().join("logo.png"), "<html>").unwrap();
    let refused = keyward()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--branding-logo-file",
            "logo.png",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("logo logo.png: not a PNG, JPEG, WebP, GIF or SVG image"),
        "{}",
        text(&refused.stderr)
    );
}

#[tokio::test]
async fn route_rules_in_the_configuration_file_decide_forward_authentication() {
    let dir = TempDir::new().unwrap();
    let url = database_url(&dir);
    let key = bootstrap_json(&url, "Acme", "ada@example.com")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(
        dir.path().join("keyward.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase_url = \"{url}\"\n\n\
             [[routes]]\nmethods = [\"GET\"]\npath = \"/status/*\"\nscopes = []\n"
        ),
    )
    .unwrap();
    let mut command = keyward();
    command.arg("serve");
    let server = Server::spawn(command, &dir);
    let client = reqwest::Client::new();
    let decide = |method: &'static str| {
        client
            .get(server.url("/v1/forward-auth"))
            .bearer_auth(&key)
            .header("x-forwarded-method", method)
            .header("x-forwarded-uri", "/status/health")
            .send()
    };
    let passed = decide("GET").await.unwrap();
    assert_eq!(passed.status(), 200);
    assert!(passed.headers().contains_key("keyward-key-id"));
    assert_eq!(decide("DELETE").await.unwrap().status(), 403);
}

/// `[proxy]` in the configuration file: the node also serves the protected upstream.
#[tokio::test]
async fn the_proxy_section_puts_a_gateway_in_front_of_an_upstream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = TempDir::new().unwrap();
    let url = database_url(&dir);
    let key = bootstrap_json(&url, "Acme", "ada@example.com")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // The upstream: answers one request with a fixed body and hands over what it read.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_address = upstream.local_addr().unwrap();
    let served = tokio::spawn(async move {
        let (mut connection, _) = upstream.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buffer = [0u8; 4096];
        while !head.windows(4).any(|end| end == b"\r\n\r\n") {
            let n = connection.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the request head ended early");
            head.extend_from_slice(&buffer[..n]);
        }
        connection
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nupstream")
            .await
            .unwrap();
        String::from_utf8(head).unwrap()
    });
    let gateway = free_port();
    std::fs::write(
        dir.path().join("keyward.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase_url = \"{url}\"\n\n\
             [proxy]\nlisten = \"127.0.0.1:{gateway}\"\nupstream = \"http://{upstream_address}\"\n\
             timeout_seconds = 5\nthreads = 2\n\n\
             [[routes]]\nmethods = [\"GET\"]\npath = \"/status/*\"\nscopes = []\n"
        ),
    )
    .unwrap();
    let mut command = keyward();
    command.arg("serve");
    let mut server = Server::spawn(command, &dir);
    let client = reqwest::Client::new();
    let through = format!("http://127.0.0.1:{gateway}/status/health");
    let refused = client.get(&through).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let passed = client.get(&through).bearer_auth(&key).send().await.unwrap();
    assert_eq!(passed.status(), 200);
    assert_eq!(passed.text().await.unwrap(), "upstream");
    let head = served.await.unwrap().to_lowercase();
    assert!(
        head.starts_with("get /status/health http/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("keyward-key-id: key_"), "{head}");
    assert!(!head.contains("authorization"), "{head}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");

    // One of the two alone is a mistake, said at start.
    std::fs::write(
        dir.path().join("keyward.toml"),
        format!("database_url = \"{url}\"\n[proxy]\nlisten = \"127.0.0.1:{gateway}\"\n"),
    )
    .unwrap();
    let output = keyward()
        .arg("serve")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("--proxy-upstream"),
        "{}",
        text(&output.stderr)
    );
    // `keyward config check` on a `[proxy]` section with `rest`: what it says.
    let refusal = |rest: &str| {
        std::fs::write(
            dir.path().join("bad.toml"),
            format!("[proxy]\nlisten = \"127.0.0.1:1\"\n{rest}"),
        )
        .unwrap();
        let output = keyward()
            .args(["config", "check", "bad.toml"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        text(&output.stderr)
    };
    // And an upstream that is not plain http names its line.
    let said = refusal("upstream = \"https://api.internal\"\n");
    assert!(
        said.starts_with("error: bad.toml:1: `proxy_upstream`"),
        "{said}"
    );
    assert!(said.contains("plain http"), "{said}");
    // A gateway needs a thread at least.
    let said = refusal("upstream = \"http://api.internal\"\nthreads = 0\n");
    assert!(
        said.starts_with("error: bad.toml:1: `proxy_threads`"),
        "{said}"
    );
}

#[tokio::test]
async fn platform_scopes_from_the_configuration_file_reach_keys_routes_and_the_client() {
    let dir = TempDir::new().unwrap();
    let url = database_url(&dir);
    let platform = "[[scopes]]\nname = \"databases:read\"\n\
                    description = \"List and read databases.\"\nlevel = \"project\"\n\n\
                    [[routes]]\nmethods = [\"GET\"]\npath = \"/v1/databases/*\"\n\
                    scopes = [\"databases:read\"]\n";
    let config = dir.path().join("platform.toml");
    std::fs::write(&config, format!("database_url = \"{url}\"\n\n{platform}")).unwrap();

    // The first key gets the platform's scopes too, from the same file.
    let output = keyward()
        .args([
            "bootstrap",
            "--org",
            "Acme",
            "--email",
            "ada@example.com",
            "--json",
        ])
        .args(["--database-url", &url])
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let key = serde_json::from_slice::<Value>(&output.stdout).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut command = keyward();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config);
    let mut server = Server::spawn(command, &dir);
    let passed = reqwest::Client::new()
        .get(server.url("/v1/forward-auth"))
        .bearer_auth(&key)
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/v1/databases/main")
        .send()
        .await
        .unwrap();
    assert_eq!(passed.status(), 200);
    let scopes = passed.headers()["keyward-scopes"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(scopes.ends_with(" databases:read"), "{scopes}");

    let listed = client(&server, Some(&key), &["scopes"]);
    let table = text(&listed.stdout);
    assert!(table.starts_with("SCOPE"), "{table}");
    let row = table
        .lines()
        .find(|line| line.starts_with("databases:read"))
        .expect("the platform's scope is listed");
    assert!(
        row.contains("project") && row.contains("member") && row.contains("List and read"),
        "{row}"
    );
    let (status, _) = server.terminate();
    assert!(status.success());

    // The scope removed from the file: the server says how many credentials hold it, and the
    // list shows it as unknown.
    std::fs::write(&config, format!("database_url = \"{url}\"\n")).unwrap();
    let mut command = keyward();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config);
    let mut server = Server::spawn(command, &dir);
    let list = text(&client(&server, Some(&key), &["keys", "list"]).stdout);
    assert!(list.contains("databases:read(unknown)"), "{list}");
    let (_, log) = server.terminate();
    let warning = log
        .lines()
        .find(|line| line.contains("no longer defines"))
        .unwrap_or_else(|| panic!("a warning about the removed scope: {log}"));
    assert!(
        warning.contains("databases:read") && warning.contains("credentials=1"),
        "{warning}"
    );
}

#[test]
fn sigterm_right_after_the_server_says_it_listens_still_stops_it_gracefully() {
    // The handler is in place before the address is logged: a supervisor that stops the
    // server as soon as it is up gets a clean exit, not death by signal.
    for _ in 0..5 {
        let dir = TempDir::new().unwrap();
        let mut server = Server::start(&dir, &[]);
        let (status, log) = server.terminate();
        assert!(status.success(), "{status:?}: {log}");
        assert!(log.contains("keyward stopped"), "{log}");
    }
}

#[test]
fn configuration_mistakes_name_the_file_and_line_and_exit_with_2() {
    let dir = TempDir::new().unwrap();
    let check = |name: &str, content: &str| {
        std::fs::write(dir.path().join(name), content).unwrap();
        let output = keyward()
            .args(["config", "check", name])
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            output.status.code(),
            text(&output.stdout),
            text(&output.stderr),
        )
    };
    let (code, stdout, _) = check(
        "good.toml",
        "listen = \"127.0.0.1:9000\"\nkey_brand = \"acme\"\nmax_connections = 500\n",
    );
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout,
        "good.toml: valid (3 settings, 0 platform scopes, 0 route rules)\n"
    );
    let (code, stdout, stderr) = check(
        "branded.toml",
        "[branding]\nproduct_name = \"Acme Cloud\"\naccent_color = \"#0a7d5a\"\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "branded.toml: valid (2 settings, 0 platform scopes, 0 route rules)\n"
    );
    let (code, stdout, stderr) = check(
        "sso.toml",
        "[oidc]\nname = \"Acme ID\"\nissuer = \"https://id.example.com\"\n\
         client_id = \"keyward\"\nclient_secret_file = \"/etc/keyward/oidc-secret\"\n\
         organization_claim = \"org_id\"\nrole_claim = \"keyward_role\"\n\
         password_login = false\n\n[portal]\nreturn_origins = [\"https://console.example.com\"]\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "sso.toml: valid (8 settings, 0 platform scopes, 0 route rules)\n"
    );
    // The routes come before the scopes they name: the scopes are read first all the same.
    let routes = "listen = \"127.0.0.1:9000\"\n\n[[routes]]\nmethods = [\"GET\"]\n\
                  path = \"/v1/databases/{project_id}/*\"\nscopes = [\"databases:read\"]\n\
                  project = \"project_id\"\n\n[[routes]]\npath = \"/status\"\nscopes = []\n\n\
                  [[scopes]]\nname = \"databases:read\"\ndescription = \"Read databases.\"\n\
                  level = \"project\"\n";
    let (code, stdout, stderr) = check("routes.toml", routes);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "routes.toml: valid (1 setting, 1 platform scope, 2 route rules)\n"
    );
    for (name, content, said) in [
        (
            "unknown.toml",
            "listen = \"127.0.0.1:9000\"\n\ncolour = \"blue\"\n",
            "error: unknown.toml:3: unknown setting `colour`",
        ),
        (
            "range.toml",
            "# too low\ncache_max_age_seconds = 0\n",
            "error: range.toml:2: `cache_max_age_seconds`: invalid value '0'",
        ),
        (
            "brand.toml",
            "key_brand = \"Bad_Brand\"\n",
            "error: brand.toml:1: `key_brand`: invalid value 'Bad_Brand'",
        ),
        (
            "colour.toml",
            "listen = \"127.0.0.1:9000\"\n[branding]\nproduct_name = \"Acme\"\naccent_color = \"blue\"\n",
            "error: colour.toml:2: `branding_accent_color`: invalid value 'blue'",
        ),
        (
            "issuer.toml",
            "[oidc]\nissuer = \"http://id.example.com\"\n",
            "error: issuer.toml:1: `oidc_issuer`: invalid value",
        ),
        (
            "origin.toml",
            "[portal]\nreturn_origins = [\"https://console.example.com/app\"]\n",
            "error: origin.toml:1: `portal_return_origins`: invalid value",
        ),
        (
            "syntax.toml",
            "listen = \"127.0.0.1:9000\"\nlog = \n",
            "error: syntax.toml:2: ",
        ),
        (
            "scope.toml",
            "[[routes]]\npath = \"/x\"\nscopes = [\"databases:read\"]\n",
            "error: scope.toml:1: unknown scope \"databases:read\"",
        ),
        (
            "unreachable.toml",
            "[[routes]]\npath = \"/v1/*\"\nscopes = []\n\n[[routes]]\npath = \"/v1/x\"\nscopes = []\n",
            "error: unreachable.toml:5: this rule can never match: rule 1 (/v1/*)",
        ),
        (
            "redefined.toml",
            "[[scopes]]\nname = \"a:b\"\ndescription = \"A.\"\n\n\
             [[scopes]]\nname = \"instances:read\"\ndescription = \"Mine.\"\n",
            "error: redefined.toml:5: instances:read is one of Keyward's own scopes",
        ),
        (
            "level.toml",
            "[[scopes]]\nname = \"a:b\"\ndescription = \"A.\"\nlevel = \"team\"\n",
            "error: level.toml:1: `level = \"team\"`: a scope's level is",
        ),
        (
            "grammar.toml",
            "\n[[scopes]]\nname = \"Databases\"\ndescription = \"A.\"\n",
            "error: grammar.toml:2: \"Databases\" is not a scope name",
        ),
        (
            "nodescription.toml",
            "[[scopes]]\nname = \"a:b\"\n",
            "error: nodescription.toml:1: the scope a:b needs a `description`",
        ),
        (
            "scopefield.toml",
            "[[scopes]]\nname = \"a:b\"\ndescription = \"A.\"\nrole = \"owner\"\n",
            "error: scopefield.toml:1: unknown scope field `role`",
        ),
        (
            "field.toml",
            "[[routes]]\npath = \"/x\"\nscopes = []\nscope = \"a\"\n",
            "error: field.toml:1: unknown route field `scope`",
        ),
        (
            "header.toml",
            "[[routes]]\npath = \"/x\"\nscopes = []\nproject = \"header:X Project\"\n",
            "error: header.toml:1: `project = \"header:X Project\"`: \"X Project\" is not a header name",
        ),
        (
            "literal.toml",
            "\n[[routes]]\npath = \"/v1/données\"\nscopes = []\n",
            "error: literal.toml:2: in the path \"/v1/données\", the segment \"données\" could never match",
        ),
        (
            "routename.toml",
            "[[routes]]\npath = \"/x\"\nscopes = []\nname = \"Databases\"\n",
            "error: routename.toml:1: `name = \"Databases\"`: a route's name is 1 to 64 lowercase letters",
        ),
        (
            "methods.toml",
            "[[routes]]\nmethods = []\npath = \"/x\"\nscopes = []\n",
            "error: methods.toml:1: `methods = []` names no method; leave `methods` out for any method",
        ),
        (
            "shape.toml",
            "listen = [\"127.0.0.1:9000\"]\n",
            "error: shape.toml:1: `listen` takes a string or a whole number",
        ),
        (
            "proxies.toml",
            "\n\ntrusted_proxies = [\"10.0.0.0/8\", \"10.1.2.3/8\"]\n",
            "error: proxies.toml:3: `trusted_proxies`: invalid value '10.1.2.3/8'",
        ),
    ] {
        let (code, _, stderr) = check(name, content);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(stderr.starts_with(said), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
    // `serve` refuses the same file the same way, before opening anything.
    std::fs::write(dir.path().join("keyward.toml"), "colour = \"blue\"\n").unwrap();
    let serve = keyward()
        .arg("serve")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(serve.status.code(), Some(2));
    assert_eq!(
        text(&serve.stderr),
        "error: keyward.toml:1: unknown setting `colour` (see `keyward serve --help` for the options)\n"
    );
    assert!(
        !dir.path().join("keyward-data").exists(),
        "nothing was created"
    );
}

#[test]
fn bootstrap_creates_one_organization_per_name() {
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(&dir);
    let created = bootstrap_json(&url, "Acme", "ada@example.com");
    for field in ["organization_id", "user_id", "key_id", "key", "password"] {
        assert!(created[field].is_string(), "{field} missing: {created}");
    }
    assert!(created["key"].as_str().unwrap().starts_with("kwk_"));
    assert!(
        dir.path().join("data/keyward.db").exists(),
        "the directory was created"
    );

    let again = keyward()
        .args(["bootstrap", "--org", "acme", "--email", "bob@example.com"])
        .args(["--database-url", &url])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    assert!(again.stdout.is_empty(), "no key is printed on failure");
}

#[test]
fn bootstrap_prints_the_key_once_in_text_and_reads_a_password_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(&dir);
    let mut child = keyward()
        .args(["bootstrap", "--org", "Acme", "--email", "ada@example.com"])
        .args([
            "--password-stdin",
            "--key-brand",
            "onet",
            "--database-url",
            &url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery staple\n")
        .unwrap();
    let output: Output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("shown once"), "{stdout}");
    assert!(
        !stdout.contains("password (shown once)"),
        "no password was generated"
    );
    assert!(
        !stdout.contains("correct horse"),
        "the given password is never printed"
    );
    let keys: Vec<_> = stdout
        .split_whitespace()
        .filter(|word| word.starts_with("onetk_"))
        .collect();
    assert_eq!(keys.len(), 1, "{stdout}");

    // The same person can own a second organization; their password stays as it is.
    let second = keyward()
        .args([
            "bootstrap",
            "--org",
            "Acme Labs",
            "--email",
            "ADA@example.com",
        ])
        .args(["--database-url", &url])
        .output()
        .unwrap();
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(text(&second.stdout).contains("existing account"));

    let short = keyward()
        .args(["bootstrap", "--org", "Short", "--email", "eve@example.com"])
        .args(["--password-stdin", "--database-url", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = {
        let mut short = short;
        short.stdin.take().unwrap().write_all(b"short\n").unwrap();
        short.wait_with_output().unwrap()
    };
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("at least 10 characters"));
}

/// Runs `keyward migrate` on `url` and returns its exit code and standard error.
fn migrate(url: &str) -> (Option<i32>, String) {
    let output = keyward()
        .args(["migrate", "--database-url", url])
        .output()
        .unwrap();
    (output.status.code(), text(&output.stderr))
}

#[test]
fn unsupported_database_urls_are_explained_without_their_password() {
    for (url, names) in [
        ("mysql://root:hunter2@localhost/keyward", "\"mysql\""),
        ("localhost/keyward", "no scheme"),
        ("sqlite::memory:", "in-memory"),
    ] {
        let (code, stderr) = migrate(url);
        assert_eq!(code, Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        for wanted in [names, "sqlite://", "postgres://"] {
            assert!(stderr.contains(wanted), "{url}: {stderr}");
        }
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

#[test]
fn a_database_file_that_cannot_be_opened_is_named_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the data directory should be, and a directory where the file should be.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "").unwrap();
    let taken = dir.path().join("taken.db");
    std::fs::create_dir(&taken).unwrap();
    for (path, url, reason) in [
        (
            blocked.clone(),
            format!("sqlite://{}/keyward.db", blocked.display()),
            "File exists",
        ),
        (
            taken.clone(),
            format!("sqlite://{}", taken.display()),
            "Is a directory",
        ),
    ] {
        let (code, stderr) = migrate(&url);
        assert_eq!(code, Some(1));
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
        assert!(stderr.contains(reason), "{stderr}");
    }
}

#[test]
fn a_refused_postgres_connection_says_so_at_once_without_the_password() {
    // Port 1 on the loopback address: nothing listens there.
    let (code, stderr) = migrate("postgres://keyward:s3cret@127.0.0.1:1/keyward");
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(
        stderr.contains("postgres://keyward:***@127.0.0.1:1/keyward"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("s3cret") && !stderr.contains("timed out"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("Connection refused").count(),
        1,
        "said once: {stderr}"
    );
}

#[tokio::test]
async fn migrate_prints_the_database_url_without_its_password() {
    let Some(cluster) =
        keyward_store::testing::TempPostgres::start().unwrap_or_else(|error| panic!("{error}"))
    else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let with_password = url.replacen("keyward@", "keyward:s3cret@", 1);
    let (code, stderr) = migrate(&with_password);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("keyward:***@"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

/// `keyward serve` on its defaults makes `./keyward-data` private (0700) with its files
/// (0600), though the webhook signing key is written before the database; a key file in a
/// directory of its own gets a private directory too.
#[test]
fn serve_makes_its_data_directory_and_key_files_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut command = keyward();
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("KEYWARD_DATABASE_URL")
        .env_remove("KEYWARD_WEBHOOKS_KEY_FILE");
    let mut server = Server::spawn(command, &dir);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let data = dir.path().join("keyward-data");
    assert_eq!(mode(&data), 0o700, "the data directory");
    for file in ["keyward.db", "webhooks.key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }

    let mut command = keyward();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--webhooks-key-file"])
        .arg(dir.path().join("secrets/webhooks.key"))
        .arg("--database-url")
        .arg(database_url(&dir));
    let mut server = Server::spawn(command, &dir);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert_eq!(mode(&dir.path().join("secrets")), 0o700);
}

#[tokio::test]
async fn the_quick_start_works_and_sigterm_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir, &["--last-used-flush-seconds", "3600"]);
    let created = bootstrap_json(&database_url(&dir), "Acme", "ada@example.com");
    let key = created["key"].as_str().unwrap();

    let client = reqwest::Client::new();
    let answer = client
        .get(server.url("/v1/instances"))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "data": [], "next_cursor": null }));

    let (status, log) = server.terminate();
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(log.contains("keyward stopped"), "{log}");
    assert!(!log.contains(key), "the key must never be logged");

    // The last use, held in memory, was written on the way out.
    let store = keyward_store::open(&database_url(&dir)).await.unwrap();
    let organization = OrganizationId::parse(created["organization_id"].as_str().unwrap()).unwrap();
    let key_id =
        CredentialId::parse(created["key_id"].as_str().unwrap(), CredentialKind::ApiKey).unwrap();
    let stored = store
        .get_credential(organization, key_id)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.last_used_at.is_some());
    store.close().await;
}

#[tokio::test]
async fn a_crash_loses_no_acknowledged_write_and_never_unrevokes_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &[]);
    let created = bootstrap_json(&database_url(&dir), "Acme", "ada@example.com");
    let admin = created["key"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let mut kept = Vec::new();
    let mut revoked = Vec::new();
    for n in 0..10 {
        let answer = client
            .post(server.url("/v1/api-keys"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({ "name": format!("k{n}"), "scopes": ["instances:read"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
        let body: Value = answer.json().await.unwrap();
        let key = body["key"].as_str().unwrap().to_owned();
        if n % 2 == 0 {
            let gone = client
                .delete(server.url(&format!("/v1/api-keys/{}", body["id"].as_str().unwrap())))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            assert_eq!(gone.status(), 204);
            revoked.push(key);
        } else {
            kept.push(key);
        }
    }
    // SIGKILL: no shutdown, no flush.
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let restarted = Server::start(&dir, &[]);
    for key in &kept {
        let answer = client
            .get(restarted.url("/v1/me"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "a created key survives");
    }
    for key in &revoked {
        let answer = client
            .get(restarted.url("/v1/me"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401, "a revoked key stays revoked");
    }
}

#[tokio::test]
async fn two_nodes_on_one_postgres_share_revocations_sessions_and_last_use() {
    let Some(cluster) =
        keyward_store::testing::TempPostgres::start().unwrap_or_else(|error| panic!("{error}"))
    else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut a = Server::start_on(&url, &dir, &["--last-used-flush-seconds", "3600"]);
    let mut b = Server::start_on(&url, &dir, &["--last-used-flush-seconds", "3600"]);
    let admin = bootstrap_json(&url, "Acme", "ada@example.com");
    let admin_key = admin["key"].as_str().unwrap();
    let client = reqwest::Client::new();

    let created: Value = client
        .post(a.url("/v1/api-keys"))
        .bearer_auth(admin_key)
        .json(&serde_json::json!({ "name": "Shared", "scopes": ["instances:read"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    for node in [&a, &b] {
        let status = client
            .get(node.url("/v1/me"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "warm on every node");
    }

    // Revoked through A: B refuses it within a second, without waiting for its cache to age.
    let revoked = client
        .delete(a.url(&format!("/v1/api-keys/{id}")))
        .bearer_auth(admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let revoked_at = Instant::now();
    loop {
        let status = client
            .get(b.url("/v1/me"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "node B still accepts the key a second after its revocation"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // A dashboard session made on A works on B.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login_page = http.get(a.url("/login")).send().await.unwrap();
    let csrf_cookie = login_page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let csrf = csrf_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let password = admin["password"].as_str().unwrap();
    let signed_in = http
        .post(a.url("/login"))
        .header("cookie", format!("keyward_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        // The CSRF token and the generated password are letters and digits only.
        .body(format!(
            "csrf_token={csrf}&email=ada%40example.com&password={password}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = http
        .get(b.url("/settings/api-keys"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "node B knows the session node A made");

    // Last use recorded on both nodes reaches the database when they stop.
    let (status_a, _) = a.terminate();
    let (status_b, _) = b.terminate();
    assert!(status_a.success() && status_b.success());
    let store = keyward_store::open(&url).await.unwrap();
    let organization = OrganizationId::parse(admin["organization_id"].as_str().unwrap()).unwrap();
    let shared = CredentialId::parse(&id, CredentialKind::ApiKey).unwrap();
    let stored = store
        .get_credential(organization, shared)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.last_used_at.is_some());
    assert!(stored.revoked_at.is_some());
    store.close().await;
}

/// Runs the client with the server's URL and, if given, a key in KEYWARD_API_KEY.
fn client(server: &Server, key: Option<&str>, args: &[&str]) -> Output {
    let mut command = keyward();
    command.env("KEYWARD_URL", format!("http://{}", server.address));
    match key {
        Some(key) => command.env("KEYWARD_API_KEY", key),
        None => command.env_remove("KEYWARD_API_KEY"),
    };
    command.args(args).output().unwrap()
}

fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn the_client_manages_keys_projects_tokens_and_instances() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir, &[]);
    let admin = bootstrap_json(&database_url(&dir), "Acme", "ada@example.com");
    let admin_key = admin["key"].as_str().unwrap();

    let me = json_of(&client(&server, Some(admin_key), &["whoami", "--json"]));
    assert_eq!(me["organization_id"], admin["organization_id"]);
    let table = text(&client(&server, Some(admin_key), &["whoami"]).stdout);
    assert!(
        table.starts_with("ID") && table.contains("bootstrap"),
        "{table}"
    );

    // Keys: created (secret printed once), listed without it, shown, revoked.
    let created = client(
        &server,
        Some(admin_key),
        &[
            "keys",
            "create",
            "--name",
            "CI",
            "--scope",
            "instances:read,projects:read",
            "--expires-in-days",
            "30",
        ],
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let printed = text(&created.stdout);
    assert!(printed.contains("shown once"), "{printed}");
    let key = printed
        .split_whitespace()
        .find(|w| w.starts_with("kwk_") && w.len() == 42)
        .expect("the new key")
        .to_owned();
    let listed = text(&client(&server, Some(admin_key), &["keys", "list"]).stdout);
    assert!(
        listed.contains("CI") && listed.contains("active") && !listed.contains(&key),
        "{listed}"
    );
    let keys = json_of(&client(
        &server,
        Some(admin_key),
        &["keys", "list", "--json", "--all"],
    ));
    let ci = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "CI")
        .unwrap()
        .clone();
    let id = ci["id"].as_str().unwrap();
    assert_eq!(
        json_of(&client(
            &server,
            Some(admin_key),
            &["keys", "show", id, "--json"]
        ))["scopes"],
        serde_json::json!(["instances:read", "projects:read"])
    );

    // Refusals are explained in one line with exit code 1; usage errors exit 2.
    let forbidden = client(
        &server,
        Some(&key),
        &["projects", "create", "--name", "Nope"],
    );
    assert_eq!(forbidden.status.code(), Some(1));
    assert!(
        text(&forbidden.stderr).contains("lacks the projects:write scope"),
        "{}",
        text(&forbidden.stderr)
    );
    let invalid = client(
        &server,
        Some(admin_key),
        &["keys", "create", "--name", "x", "--scope", "root"],
    );
    assert_eq!(invalid.status.code(), Some(1));
    assert!(
        text(&invalid.stderr).contains("scopes: unknown scope"),
        "{}",
        text(&invalid.stderr)
    );
    let missing = client(
        &server,
        Some(admin_key),
        &["keys", "show", "key_00000000000000000000000000"],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("not found"));
    let no_key = client(&server, None, &["whoami"]);
    assert_eq!(no_key.status.code(), Some(2));
    assert!(text(&no_key.stderr).contains("KEYWARD_API_KEY"));
    assert_eq!(
        client(&server, Some(admin_key), &["keys", "show", "../x"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        client(&server, Some(admin_key), &["keys", "create", "--name", "x"])
            .status
            .code(),
        Some(2)
    );

    let revoked = client(&server, Some(admin_key), &["keys", "revoke", id]);
    assert!(revoked.status.success());
    let refused = client(&server, Some(&key), &["whoami"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("refused"),
        "{}",
        text(&refused.stderr)
    );

    // Projects, tokens and instances, with the key read from a file.
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{admin_key}\n")).unwrap();
    let file = key_file.to_str().unwrap();
    let project = json_of(&client(
        &server,
        None,
        &[
            "projects",
            "create",
            "--name",
            "Web",
            "--api-key-file",
            file,
            "--json",
        ],
    ));
    let project_id = project["id"].as_str().unwrap();
    let projects =
        text(&client(&server, None, &["projects", "list", "--api-key-file", file]).stdout);
    assert!(projects.contains("Web"), "{projects}");
    let token = json_of(&client(
        &server,
        Some(admin_key),
        &[
            "tokens",
            "create",
            "--project",
            project_id,
            "--name",
            "deploy",
            "--scope",
            "instances:read",
            "--json",
        ],
    ));
    let token_key = token["key"].as_str().unwrap();
    assert!(token_key.starts_with("kwp_"));
    let instances = text(&client(&server, Some(token_key), &["instances", "list"]).stdout);
    assert!(instances.starts_with("ID"), "{instances}");
    let tokens = json_of(&client(
        &server,
        Some(admin_key),
        &["tokens", "list", "--project", project_id, "--json"],
    ));
    assert_eq!(tokens["data"].as_array().unwrap().len(), 1);
    let token_id = token["id"].as_str().unwrap();
    assert!(
        client(
            &server,
            Some(admin_key),
            &["tokens", "revoke", "--project", project_id, token_id]
        )
        .status
        .success()
    );
    assert_eq!(
        client(&server, Some(token_key), &["instances", "list"])
            .status
            .code(),
        Some(1)
    );
    assert!(
        client(
            &server,
            Some(admin_key),
            &["projects", "delete", project_id]
        )
        .status
        .success()
    );

    let (status, _) = server.terminate();
    assert!(status.success());
}

#[tokio::test]
async fn the_client_manages_members_and_reads_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &[]);
    let url = database_url(&dir);
    let admin = bootstrap_json(&url, "Acme", "ada@example.com");
    let key = admin["key"].as_str().unwrap();
    let grace = bootstrap_json(&url, "Grace's", "grace@example.com");
    let grace_id = grace["user_id"].as_str().unwrap();

    let added = json_of(&client(
        &server,
        Some(key),
        &[
            "members",
            "add",
            "--email",
            "grace@example.com",
            "--role",
            "member",
            "--json",
        ],
    ));
    // Adding is inviting: Grace joins when she accepts (here, as the dashboard would).
    assert_eq!(added["email"], "grace@example.com");
    assert_eq!(added["status"], "pending");
    assert_eq!(added["emailed"], false);
    let invitation = added["invitation_id"].as_str().unwrap();
    let table = text(&client(&server, Some(key), &["members", "invitations"]).stdout);
    assert!(table.starts_with("INVITATION"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains(invitation) && l.contains("pending")),
        "{table}"
    );
    let store = keyward_store::open(&url).await.unwrap();
    let joined = store
        .answer_invitation(
            &keyward_store::AuditContext::SYSTEM,
            keyward_store::InvitationKey::Id(
                keyward_core::InvitationId::parse(invitation).unwrap(),
            ),
            keyward_store::InvitationAnswer::Accept(keyward_store::NewOwner::Existing(
                keyward_core::UserId::parse(grace_id).unwrap(),
            )),
            keyward_core::Timestamp::now(),
        )
        .await
        .unwrap();
    assert!(joined.is_ok(), "{joined:?}");
    store.close().await;
    // Another invitation, renewed, then cancelled.
    let other = json_of(&client(
        &server,
        Some(key),
        &[
            "members",
            "add",
            "--email",
            "hal@example.com",
            "--role",
            "member",
            "--json",
        ],
    ));
    let other = other["invitation_id"].as_str().unwrap();
    let resent = client(&server, Some(key), &["members", "resend", other]);
    assert!(resent.status.success(), "{}", text(&resent.stderr));
    assert!(
        text(&resent.stdout).contains("Not emailed"),
        "{}",
        text(&resent.stdout)
    );
    let cancelled = client(&server, Some(key), &["members", "cancel", other]);
    assert!(cancelled.status.success(), "{}", text(&cancelled.stderr));
    let again = client(&server, Some(key), &["members", "cancel", other]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stderr));
    let table = text(&client(&server, Some(key), &["members", "invitations"]).stdout);
    assert!(!table.contains(other), "{table}");
    // A key never raises anyone: admins are made by people, in the dashboard.
    let raised = client(
        &server,
        Some(key),
        &["members", "set-role", grace_id, "--role", "admin"],
    );
    assert_eq!(raised.status.code(), Some(1), "{}", text(&raised.stderr));
    assert!(
        text(&raised.stderr).contains("cannot make admins"),
        "{}",
        text(&raised.stderr)
    );
    let changed = client(
        &server,
        Some(key),
        &["members", "set-role", grace_id, "--role", "member"],
    );
    assert!(changed.status.success(), "{}", text(&changed.stderr));
    let table = text(&client(&server, Some(key), &["members", "list"]).stdout);
    assert!(table.starts_with("USER"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains("grace@example.com") && l.contains("member")),
        "{table}"
    );
    // A key never changes an owner's role.
    let last_owner = client(
        &server,
        Some(key),
        &[
            "members",
            "set-role",
            admin["user_id"].as_str().unwrap(),
            "--role",
            "member",
        ],
    );
    assert_eq!(
        last_owner.status.code(),
        Some(1),
        "{}",
        text(&last_owner.stderr)
    );
    let removed = client(&server, Some(key), &["members", "remove", grace_id]);
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    let bad_role = client(
        &server,
        Some(key),
        &[
            "members",
            "add",
            "--email",
            "x@example.com",
            "--role",
            "root",
        ],
    );
    assert_eq!(bad_role.status.code(), Some(2));

    // The log, newest first, filtered; and exported as JSON lines.
    let listed = text(
        &client(
            &server,
            Some(key),
            &["audit", "list", "--action", "member.removed"],
        )
        .stdout,
    );
    assert!(listed.starts_with("TIME"), "{listed}");
    assert!(
        listed.contains("member.removed") && listed.contains(grace_id),
        "{listed}"
    );
    assert!(!listed.contains("member.added"), "{listed}");
    let export = client(
        &server,
        Some(key),
        &[
            "audit",
            "export",
            "--since",
            "2000-01-01T00:00:00Z",
            "--until",
            "2999-01-01T00:00:00Z",
        ],
    );
    assert!(export.status.success(), "{}", text(&export.stderr));
    let events: Vec<Value> = text(&export.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "member.removed",
            "invitation.cancelled",
            "invitation.resent",
            "invitation.created",
            "member.added",
            "invitation.created",
            "api_key.created",
            "organization.created"
        ]
    );
    assert!(
        text(&export.stderr).is_empty(),
        "no progress line off a terminal"
    );
}

#[tokio::test]
async fn the_client_rotates_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &[]);
    let admin = bootstrap_json(&database_url(&dir), "Acme", "ada@example.com");
    let admin_key = admin["key"].as_str().unwrap();
    let created = json_of(&client(
        &server,
        Some(admin_key),
        &[
            "keys",
            "create",
            "--name",
            "CI",
            "--scope",
            "instances:read",
            "--json",
        ],
    ));
    let (old_id, old_key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let rotated = client(
        &server,
        Some(admin_key),
        &["keys", "rotate", old_id, "--grace-seconds", "0"],
    );
    let out = text(&rotated.stdout);
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    assert!(out.contains("stopped working now"), "{out}");
    let new_key = out
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("kwk_"))
        .expect("the new key, printed once");
    assert_ne!(new_key, old_key);
    assert!(client(&server, Some(new_key), &["whoami"]).status.success());
    assert_eq!(
        client(&server, Some(old_key), &["whoami"]).status.code(),
        Some(1)
    );
    let refused = client(
        &server,
        Some(admin_key),
        &["keys", "rotate", old_id, "--grace-seconds", "700000"],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
}

#[tokio::test]
async fn the_client_sets_filters_and_changes_external_ids_and_meta() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &[]);
    let admin = bootstrap_json(&database_url(&dir), "Acme", "ada@example.com");
    let admin_key = admin["key"].as_str().unwrap();
    let create = |name: &str, external_id: &str| {
        json_of(&client(
            &server,
            Some(admin_key),
            &[
                "keys",
                "create",
                "--name",
                name,
                "--scope",
                "instances:read",
                "--external-id",
                external_id,
                "--meta",
                r#"{"plan":"pro"}"#,
                "--json",
            ],
        ))
    };
    let tagged = create("first", "user 42&x=1");
    assert_eq!(tagged["external_id"], "user 42&x=1");
    assert_eq!(tagged["meta"], json!({"plan": "pro"}));
    create("second", "user_43");
    let id = tagged["id"].as_str().unwrap();

    // The id goes into the query string encoded: `&x=1` is part of it, not a parameter.
    let listed = json_of(&client(
        &server,
        Some(admin_key),
        &["keys", "list", "--external-id", "user 42&x=1", "--json"],
    ));
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id]);
    let table = text(&client(&server, Some(admin_key), &["keys", "list"]).stdout);
    assert!(
        table.contains("EXTERNAL ID") && table.contains("user_43"),
        "{table}"
    );

    let changed = json_of(&client(
        &server,
        Some(admin_key),
        &[
            "keys",
            "update",
            id,
            "--meta",
            r#"{"plan":"free"}"#,
            "--clear-external-id",
            "--json",
        ],
    ));
    assert_eq!(changed["meta"], json!({"plan": "free"}));
    assert_eq!(changed["external_id"], Value::Null);

    // Not an object: refused before anything is sent, with a usage error.
    for args in [
        &["keys", "update", id, "--meta", "[1]"][..],
        &["keys", "update", id][..],
        &[
            "keys",
            "create",
            "--name",
            "x",
            "--scope",
            "instances:read",
            "--meta",
            "plan=pro",
        ][..],
    ] {
        let refused = client(&server, Some(admin_key), args);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&refused.stderr)
        );
    }
    // The server's own checks come back as the API words them.
    let refused = client(
        &server,
        Some(admin_key),
        &["keys", "update", id, "--external-id", "café"],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("external_id"),
        "{}",
        text(&refused.stderr)
    );
}

#[tokio::test]
async fn the_same_command_with_an_idempotency_key_creates_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &[]);
    let admin = bootstrap_json(&database_url(&dir), "Acme", "ada@example.com");
    let admin_key = admin["key"].as_str().unwrap();
    let create_project = [
        "projects",
        "create",
        "--name",
        "web",
        "--idempotency-key",
        "signup-42",
        "--json",
    ];
    let first = json_of(&client(&server, Some(admin_key), &create_project));
    let again = json_of(&client(&server, Some(admin_key), &create_project));
    assert_eq!(first["id"], again["id"]);
    let listed = json_of(&client(
        &server,
        Some(admin_key),
        &["projects", "list", "--json"],
    ));
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);

    let create_key = [
        "keys",
        "create",
        "--name",
        "CI",
        "--scope",
        "instances:read",
        "--idempotency-key",
        "ci-key",
    ];
    let made = client(&server, Some(admin_key), &create_key);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let again = client(&server, Some(admin_key), &create_key);
    assert_eq!(again.status.code(), Some(1));
    let said = text(&again.stderr);
    assert!(
        said.contains("shown once") && said.contains("/v1/api-keys/key_"),
        "{said}"
    );

    let refused = client(
        &server,
        Some(admin_key),
        &[
            "projects",
            "create",
            "--name",
            "x",
            "--idempotency-key",
            "caf\u{e9}",
        ],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
}

#[tokio::test]
async fn the_client_shows_and_sets_the_organizations_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &[]);
    let admin = bootstrap_json(&database_url(&dir), "Acme", "ada@example.com");
    let key = admin["key"].as_str().unwrap();
    let set = json_of(&client(
        &server,
        Some(key),
        &[
            "organization",
            "set-policy",
            "--max-lifetime-days",
            "30",
            "--json",
        ],
    ));
    assert_eq!(set["max_lifetime_days"], 30);
    let table = text(&client(&server, Some(key), &["organization", "show"]).stdout);
    assert!(table.contains("Acme") && table.contains("30"), "{table}");
    // New keys are held to it.
    let refused = client(
        &server,
        Some(key),
        &[
            "keys",
            "create",
            "--name",
            "Forever",
            "--scope",
            "instances:read",
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("at most 30 days"),
        "{}",
        text(&refused.stderr)
    );
    let cleared = json_of(&client(
        &server,
        Some(key),
        &[
            "organization",
            "set-policy",
            "--max-lifetime-days",
            "none",
            "--json",
        ],
    ));
    assert_eq!(cleared["max_lifetime_days"], Value::Null);
    let nothing = client(&server, Some(key), &["organization", "set-policy"]);
    assert_eq!(nothing.status.code(), Some(2));
}

#[tokio::test]
async fn the_client_limits_a_key_to_networks_behind_a_trusted_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &["--trusted-proxies", "127.0.0.1,10.0.0.0/8"]);
    let admin = bootstrap_json(&database_url(&dir), "Acme", "ada@example.com");
    let admin_key = admin["key"].as_str().unwrap();
    let created = json_of(&client(
        &server,
        Some(admin_key),
        &[
            "keys",
            "create",
            "--name",
            "office",
            "--scope",
            "instances:read",
            "--allow-cidr",
            "203.0.113.0/24,2001:db8::/32",
            "--json",
        ],
    ));
    assert_eq!(
        created["allowed_cidrs"],
        serde_json::json!(["203.0.113.0/24", "2001:db8::/32"])
    );
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let http = reqwest::Client::new();
    let me_from = |forwarded: &'static str| {
        http.get(format!("http://{}/v1/me", server.address))
            .bearer_auth(key)
            .header("x-forwarded-for", forwarded)
            .send()
    };
    assert_eq!(me_from("203.0.113.9").await.unwrap().status(), 200);
    assert_eq!(me_from("198.51.100.1").await.unwrap().status(), 403);

    let listed = text(&client(&server, Some(admin_key), &["keys", "list"]).stdout);
    assert!(listed.contains("NETWORKS"), "{listed}");
    assert!(listed.contains("203.0.113.0/24,2001:db8::/32"), "{listed}");

    let neither = client(&server, Some(admin_key), &["keys", "networks", id]);
    assert_eq!(neither.status.code(), Some(2), "{}", text(&neither.stderr));
    let bad = client(
        &server,
        Some(admin_key),
        &["keys", "networks", id, "--allow-cidr", "203.0.113.9/24"],
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("203.0.113.0/24"),
        "{}",
        text(&bad.stderr)
    );
    let lifted = json_of(&client(
        &server,
        Some(admin_key),
        &["keys", "networks", id, "--any-address", "--json"],
    ));
    assert_eq!(lifted["allowed_cidrs"], Value::Null);
    assert_eq!(me_from("198.51.100.1").await.unwrap().status(), 200);
}

/// The test receiver of the server's tests: it checks signatures with the Standard Webhooks
/// reference library (Python).
const WEBHOOK_RECEIVER: &str =
    include_str!("../../keyward-server/tests/it/support/webhook_receiver.py");

#[tokio::test]
async fn a_webhook_survives_a_kill_between_the_change_and_its_delivery() {
    let has_library = Command::new("python3")
        .args(["-c", "import standardwebhooks.webhooks"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_library {
        assert!(
            std::env::var_os("KEYWARD_REQUIRE_ALL").is_none(),
            "this test needs python3 with standardwebhooks: pip install standardwebhooks"
        );
        eprintln!("skipped: python3 with standardwebhooks is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The receivers are local: the operator allows private networks, in the file's section.
    std::fs::write(
        dir.path().join("keyward.toml"),
        "[webhooks]\nallow_private_networks = true\n",
    )
    .unwrap();
    let server = Server::start(&dir, &[]);
    let key_file = dir.path().join("data/webhooks.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the signing key is its owner's only");
    let signing_key = std::fs::read_to_string(&key_file).unwrap();

    let admin = bootstrap_json(&database_url(&dir), "Acme", "ada@example.com");
    let admin_key = admin["key"].as_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let created = json_of(&client(
        &server,
        Some(admin_key),
        &[
            "webhooks",
            "create",
            "--endpoint",
            &url,
            "--event",
            "api_key.created",
            "--json",
        ],
    ));
    let (hook, secret) = (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    );
    assert!(secret.starts_with("whsec_"));
    let listed = text(&client(&server, Some(admin_key), &["webhooks", "list"]).stdout);
    assert!(
        listed.contains(&hook) && listed.contains("api_key.created"),
        "{listed}"
    );

    // The change commits with its message; the node dies before it can deliver it.
    let key = json_of(&client(
        &server,
        Some(admin_key),
        &[
            "keys",
            "create",
            "--name",
            "CI",
            "--scope",
            "instances:read",
            "--json",
        ],
    ));
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let log = dir.path().join("received.jsonl");
    let script = dir.path().join("webhook_receiver.py");
    std::fs::write(&script, WEBHOOK_RECEIVER).unwrap();
    let mut receiver = Command::new("python3")
        .arg(&script)
        .arg(port.to_string())
        .arg(&secret)
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(receiver.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");

    let restarted = Server::start(&dir, &[]);
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        signing_key,
        "the same key after a restart"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let lines = loop {
        let lines: Vec<Value> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        if !lines.is_empty() {
            break lines;
        }
        assert!(Instant::now() < deadline, "the message was lost");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = receiver.kill();
    let _ = receiver.wait();
    assert_eq!(lines[0]["verified"], true, "{lines:?}");
    assert_eq!(lines[0]["type"], "api_key.created");
    let payload: Value = serde_json::from_str(lines[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(payload["data"]["id"], key["id"]);
    assert!(
        !lines[0]["body"]
            .as_str()
            .unwrap()
            .contains(key["key"].as_str().unwrap())
    );

    let message = lines[0]["id"].as_str().unwrap().to_owned();
    let deliveries = text(
        &client(
            &restarted,
            Some(admin_key),
            &["webhooks", "deliveries", &hook],
        )
        .stdout,
    );
    assert!(deliveries.contains(&message), "{deliveries}");
    let queued = client(
        &restarted,
        Some(admin_key),
        &["webhooks", "redeliver", &hook, &message],
    );
    assert!(queued.status.success(), "{}", text(&queued.stderr));
    let deleted = client(&restarted, Some(admin_key), &["webhooks", "delete", &hook]);
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    let none = json_of(&client(
        &restarted,
        Some(admin_key),
        &["webhooks", "list", "--json"],
    ));
    assert_eq!(none["data"], serde_json::json!([]));
}

#[tokio::test]
async fn scan_finds_real_keys_only_and_revokes_them_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &[]);
    let admin = bootstrap_json(&database_url(&dir), "Acme", "ada@example.com");
    let admin_key = admin["key"].as_str().unwrap();
    let created = json_of(&client(
        &server,
        Some(admin_key),
        &[
            "keys",
            "create",
            "--name",
            "leaked",
            "--scope",
            "instances:read",
            "--json",
        ],
    ));
    let leaked = created["key"].as_str().unwrap().to_owned();
    let token = keyward_core::PlaintextKey::generate(
        &keyward_core::Brand::default(),
        CredentialKind::ProjectToken,
    )
    .unwrap()
    .expose_secret()
    .to_owned();
    let mut look_alike = leaked.clone();
    let last = look_alike.pop().unwrap();
    look_alike.push(if last == 'A' { 'B' } else { 'A' });

    let tree = dir.path().join("repo");
    std::fs::create_dir_all(tree.join("ignored")).unwrap();
    std::fs::create_dir_all(tree.join(".git")).unwrap();
    std::fs::write(tree.join(".gitignore"), "ignored/\n").unwrap();
    std::fs::write(
        tree.join(".env"),
        format!("# settings\nKEYWARD_API_KEY={leaked}\n"),
    )
    .unwrap();
    std::fs::write(
        tree.join("config.json"),
        format!("{{\n  \"near_miss\": \"{look_alike}\",\n  \"token\": \"{token}\"\n}}\n"),
    )
    .unwrap();
    std::fs::write(tree.join("ignored/secret.txt"), &leaked).unwrap();
    std::fs::write(tree.join(".git/config"), &leaked).unwrap();
    let mut binary: Vec<u8> = (0..=255u8).cycle().take(64 * 1024).collect();
    binary.extend_from_slice(b"kwk_\0\xff kwp_");
    std::fs::write(tree.join("blob.bin"), &binary).unwrap();

    let scan = keyward().arg("scan").arg(&tree).output().unwrap();
    assert_eq!(scan.status.code(), Some(1), "{}", text(&scan.stderr));
    let out = text(&scan.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(out.contains(".env:2: api_key kwk_…"), "{out}");
    assert!(out.contains("config.json:3: project_token kwp_…"), "{out}");
    for key in [&leaked, &token] {
        assert!(!out.contains(key.as_str()) && !text(&scan.stderr).contains(key.as_str()));
    }
    let as_json = keyward()
        .args(["scan", "--json"])
        .arg(tree.join(".env"))
        .output()
        .unwrap();
    let finding: Value = serde_json::from_slice(&as_json.stdout).unwrap();
    assert_eq!(finding["line"], 2);
    assert_eq!(finding["kind"], "api_key");

    // Nothing to find: exit 0; a missing path: 2.
    let clean = keyward()
        .arg("scan")
        .arg(tree.join("ignored/..").join(".gitignore"))
        .output();
    assert_eq!(clean.unwrap().status.code(), Some(0));
    let missing = keyward().args(["scan", "no/such/place"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));

    // Standard input, and the report that revokes.
    let mut piped = keyward()
        .args(["scan", "--revoke", "--url"])
        .arg(format!("http://{}", server.address))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    piped
        .stdin
        .take()
        .unwrap()
        .write_all(format!("log line with {leaked} in it\n").as_bytes())
        .unwrap();
    let piped = piped.wait_with_output().unwrap();
    assert_eq!(piped.status.code(), Some(1), "{}", text(&piped.stderr));
    assert!(text(&piped.stdout).contains("(stdin):1: api_key"));
    assert!(
        text(&piped.stderr).contains("Reported 1 key"),
        "{}",
        text(&piped.stderr)
    );
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = http
            .get(server.url("/v1/me"))
            .bearer_auth(&leaked)
            .send()
            .await
            .unwrap()
            .status();
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the scanned key still works");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn github_keys_come_from_the_secret_scanning_section_and_a_bad_file_stops_serve() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.json"), "{}").unwrap();
    std::fs::write(
        dir.path().join("keyward.toml"),
        "[secret_scanning]\ngithub_keys_file = \"keys.json\"\n",
    )
    .unwrap();
    let checked = keyward()
        .args(["config", "check", "keyward.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    assert!(
        text(&checked.stdout).contains("valid (1 setting"),
        "{}",
        text(&checked.stdout)
    );
    let served = keyward()
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(database_url(&dir))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!served.status.success());
    assert!(
        text(&served.stderr).contains("not GitHub's public key document"),
        "{}",
        text(&served.stderr)
    );
}

/// A P-256 public key (made for this test with `openssl ecparam -name prime256v1`).
const GITHUB_TEST_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEoU2C21AvDs2cgDYl+mb6oqtAS1Co\nZqaOSwjn3i58qGjahkKaWb8eAVn1aQsANJAv98ZDViFcmOXZSut5Psv3DQ==\n-----END PUBLIC KEY-----\n";

#[test]
fn github_keys_are_fetched_from_their_url_when_the_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("www");
    std::fs::create_dir_all(&served).unwrap();
    let document = serde_json::json!({
        "public_keys": [{ "key_identifier": "test-id", "key": GITHUB_TEST_KEY, "is_current": true }]
    });
    std::fs::write(served.join("keys.json"), document.to_string()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut web = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(&served)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the test web server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let file = dir.path().join("github-keys.json");
    let url = format!("http://127.0.0.1:{port}/keys.json");
    let server = Server::start(
        &dir,
        &[
            "--github-keys-file",
            file.to_str().unwrap(),
            "--github-keys-url",
            &url,
        ],
    );
    let fetched: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(fetched, document);
    drop(server);
    let _ = web.kill();
    let _ = web.wait();

    // Nothing to fetch and no file: serve stops, saying why.
    let missing = dir.path().join("other.json");
    let refused = keyward()
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(database_url(&dir))
        .arg("--github-keys-file")
        .arg(&missing)
        .args([
            "--github-keys-url",
            &format!("http://127.0.0.1:{port}/keys.json"),
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("cannot fetch"),
        "{}",
        text(&refused.stderr)
    );
}

#[tokio::test]
async fn admin_keys_are_made_on_the_host_and_manage_organizations_through_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(&dir);
    let made = keyward()
        .args(["admin-keys", "create", "--name", "backend", "--json"])
        .args([
            "--scope",
            "organizations:read,organizations:write,organizations:act",
        ])
        .args(["--scope", "api_keys:read", "--scope", "api_keys:write"])
        .args(["--database-url", &url])
        .output()
        .unwrap();
    let made = json_of(&made);
    let admin_key = made["key"].as_str().unwrap().to_owned();
    let admin_id = made["id"].as_str().unwrap().to_owned();
    assert!(admin_key.starts_with("kwa_") && admin_id.starts_with("adk_"));
    // No scope, or an unknown one: a clear refusal, nothing made.
    for scopes in [&[][..], &["--scope", "organizations:rule"][..]] {
        let refused = keyward()
            .args(["admin-keys", "create", "--name", "x"])
            .args(scopes)
            .args(["--database-url", &url])
            .output()
            .unwrap();
        assert!(!refused.status.success());
    }
    let listed = keyward()
        .args(["admin-keys", "list", "--database-url", &url])
        .output()
        .unwrap();
    let listed = text(&listed.stdout);
    assert!(
        listed.contains(&admin_id) && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&admin_key), "a key is never shown again");

    let server = Server::start(&dir, &[]);
    let created = json_of(&client(
        &server,
        Some(&admin_key),
        &[
            "organizations",
            "create",
            "--name",
            "Acme",
            "--external-id",
            "cus_1",
            "--owner-email",
            "ada@example.com",
            "--json",
        ],
    ));
    assert_eq!(created["external_id"], "cus_1");
    let shown = json_of(&client(
        &server,
        Some(&admin_key),
        &["organizations", "show", "ext:cus_1", "--json"],
    ));
    assert_eq!(shown["id"], created["id"]);

    // Acting for it: `--organization`, or KEYWARD_ORGANIZATION.
    let key = json_of(&client(
        &server,
        Some(&admin_key),
        &[
            "keys",
            "create",
            "--organization",
            "ext:cus_1",
            "--name",
            "customer",
            "--scope",
            "api_keys:read",
            "--json",
        ],
    ));
    let customer_key = key["key"].as_str().unwrap().to_owned();
    let mut listed = keyward();
    listed
        .env("KEYWARD_URL", format!("http://{}", server.address))
        .env("KEYWARD_API_KEY", &admin_key)
        .env("KEYWARD_ORGANIZATION", "ext:cus_1")
        .args(["keys", "list", "--json"]);
    let listed = json_of(&listed.output().unwrap());
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let without = client(&server, Some(&admin_key), &["keys", "list"]);
    assert_eq!(without.status.code(), Some(1));
    assert!(
        text(&without.stderr).contains("Keyward-Organization"),
        "{}",
        text(&without.stderr)
    );

    let suspended = json_of(&client(
        &server,
        Some(&admin_key),
        &["organizations", "suspend", "ext:cus_1", "--json"],
    ));
    assert_eq!(suspended["status"], "suspended");
    let refused = client(&server, Some(&customer_key), &["whoami"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("suspended"),
        "{}",
        text(&refused.stderr)
    );
    let table = text(
        &client(
            &server,
            Some(&admin_key),
            &["organizations", "list", "--status", "suspended"],
        )
        .stdout,
    );
    assert!(
        table.contains("cus_1") && table.contains("suspended"),
        "{table}"
    );
    json_of(&client(
        &server,
        Some(&admin_key),
        &["organizations", "resume", "ext:cus_1", "--json"],
    ));
    assert!(
        client(&server, Some(&customer_key), &["whoami"])
            .status
            .success()
    );
    let deleted = client(
        &server,
        Some(&admin_key),
        &["organizations", "delete", "ext:cus_1"],
    );
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    assert_eq!(
        client(&server, Some(&customer_key), &["whoami"])
            .status
            .code(),
        Some(1)
    );

    // Revoked on the host.
    let revoked = keyward()
        .args(["admin-keys", "revoke", &admin_id, "--database-url", &url])
        .output()
        .unwrap();
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let listed = keyward()
        .args(["admin-keys", "list", "--json", "--database-url", &url])
        .output()
        .unwrap();
    assert_eq!(json_of(&listed)["data"][0]["status"], "revoked");
}

#[tokio::test]
async fn the_client_charts_a_keys_usage_per_day() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir, &["--last-used-flush-seconds", "1"]);
    let admin = bootstrap_json(&database_url(&dir), "Acme", "ada@example.com");
    let key = admin["key"].as_str().unwrap();
    let key_id = admin["key_id"].as_str().unwrap();
    for _ in 0..3 {
        assert!(client(&server, Some(key), &["whoami"]).status.success());
    }
    // The counts reach the database with the next flush (every second here).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let usage = loop {
        let usage = json_of(&client(
            &server,
            Some(key),
            &["keys", "usage", key_id, "--days", "3", "--json"],
        ));
        if usage["totals"]["allowed"].as_u64().unwrap_or(0) >= 3 {
            break usage;
        }
        assert!(std::time::Instant::now() < deadline, "{usage}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(usage["granularity"], "day");
    assert_eq!(usage["data"].as_array().unwrap().len(), 3);
    let chart = text(
        &client(
            &server,
            Some(key),
            &["keys", "usage", key_id, "--days", "3"],
        )
        .stdout,
    );
    let lines: Vec<&str> = chart.lines().collect();
    assert!(lines[0].starts_with("DAY"), "{chart}");
    assert!(lines[3].contains('█'), "today has a bar: {chart}");
    assert!(
        lines[1].trim_end().ends_with('0'),
        "no use two days ago: {chart}"
    );
    assert!(lines[4].starts_with("Total: "), "{chart}");
    let refused = client(
        &server,
        Some(key),
        &["keys", "usage", key_id, "--days", "0"],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
}

/// Sends `count` requests with `key` at once, to `a` and `b` alternately (or `a` alone), and
/// returns each one's node and status.
async fn burst(
    client: &reqwest::Client,
    nodes: &[&Server],
    key: &str,
    count: usize,
) -> Vec<(usize, u16)> {
    let mut batch = tokio::task::JoinSet::new();
    for i in 0..count {
        let node = i % nodes.len();
        let request = client
            .get(nodes[node].url("/v1/instances"))
            .bearer_auth(key);
        batch.spawn(async move { (node, request.send().await.map(|r| r.status().as_u16())) });
    }
    let mut answers = Vec::with_capacity(count);
    while let Some(done) = batch.join_next().await {
        let (node, status) = done.unwrap();
        answers.push((node, status.unwrap()));
    }
    answers
}

/// Credits on two PostgreSQL nodes, one of which is killed (SIGKILL) mid-run: the survivor
/// spends what is left, nothing is ever over-spent, and what is lost is at most the dead
/// node's lease, about one second of its requests.
#[tokio::test]
async fn a_node_killed_mid_run_loses_at_most_its_lease_and_never_over_spends() {
    let Some(cluster) =
        keyward_store::testing::TempPostgres::start().unwrap_or_else(|error| panic!("{error}"))
    else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = Server::start_on(&url, &dir, &[]);
    let mut b = Server::start_on(&url, &dir, &[]);
    let admin = bootstrap_json(&url, "Acme", "ada@example.com");
    let admin_key = admin["key"].as_str().unwrap();
    let client = reqwest::Client::new();
    const CREDITS: u64 = 20_000;
    let created: Value = client
        .post(a.url("/v1/api-keys"))
        .bearer_auth(admin_key)
        .json(&json!({ "name": "Metered", "scopes": ["instances:read"], "credits": { "remaining": CREDITS } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();

    // Three seconds over both nodes; B's pace in its last second is what its lease follows.
    let started = Instant::now();
    let mut allowed = 0u64;
    let mut b_recent: Vec<(Instant, u64)> = Vec::new();
    while started.elapsed() < Duration::from_secs(3) {
        let answers = burst(&client, &[&a, &b], &key, 32).await;
        let b_allowed = answers.iter().filter(|(n, s)| *n == 1 && *s == 200).count();
        allowed += answers.iter().filter(|(_, s)| *s == 200).count() as u64;
        assert!(
            answers.iter().all(|(_, s)| *s == 200),
            "credits are plenty yet"
        );
        b_recent.push((Instant::now(), b_allowed as u64));
    }
    let killed_at = Instant::now();
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let b_last_second: u64 = b_recent
        .iter()
        .filter(|(at, _)| killed_at.duration_since(*at) <= Duration::from_secs(1))
        .map(|(_, n)| n)
        .sum();

    // A alone, until it refuses for a while: it holds nothing more and the database is empty.
    let mut refused_in_a_row = 0;
    while refused_in_a_row < 64 {
        for (_, status) in burst(&client, &[&a], &key, 32).await {
            match status {
                200 => {
                    allowed += 1;
                    refused_in_a_row = 0;
                }
                429 => refused_in_a_row += 1,
                other => panic!("unexpected {other}"),
            }
        }
    }
    let shown: Value = client
        .get(a.url(&format!("/v1/api-keys/{id}")))
        .bearer_auth(admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["credits"]["remaining"], 0, "{shown}");
    let lost = CREDITS - allowed;
    eprintln!(
        "credits: {allowed} allowed of {CREDITS}; {lost} lost with the killed node, which \
         allowed {b_last_second} in its last second"
    );
    assert!(allowed <= CREDITS, "never over-spent");
    // Its lease follows its pace, measured when it took the lease: twice its last second,
    // for the pace to have changed since.
    assert!(
        lost <= 2 * b_last_second.max(1),
        "lost {lost}, more than about a second of B ({b_last_second})"
    );
}

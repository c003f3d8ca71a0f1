use std::net::SocketAddr;
use std::sync::Arc;

use keyward_core::password::Password;
use keyward_core::{OrganizationId, ScopeCatalog, ScopeNames};
use keyward_server::bootstrap::bootstrap_organization;
use keyward_server::{AppState, Config};
use keyward_store::ManualClock;
use keyward_store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Keyward's own scopes.
pub fn builtin_scopes() -> &'static ScopeCatalog {
    static CATALOG: std::sync::OnceLock<ScopeCatalog> = std::sync::OnceLock::new();
    CATALOG.get_or_init(ScopeCatalog::builtin)
}

/// Every one of Keyward's own scopes, as a credential stores them.
pub fn all_scope_names() -> ScopeNames {
    builtin_scopes().to_names(&builtin_scopes().all())
}

/// A running server with its own database.
pub struct TestApp {
    pub address: SocketAddr,
    /// The gateway's address, when the config has `proxy`.
    pub proxy_address: Option<SocketAddr>,
    pub store: Arc<dyn Store>,
    pub client: reqwest::Client,
    pub dir: TempDir,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// An organization made by `keyward bootstrap`, with its all-scopes key.
pub struct Org {
    pub id: OrganizationId,
    pub key: String,
    pub key_id: String,
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with this status and code, and returns it.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert!(self.body["title"].is_string());
        assert!(self.body["detail"].is_string());
        &self.body
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Config::default()).await
    }

    pub async fn spawn_with(config: Config) -> Self {
        Self::spawn_inner(config, true).await
    }

    /// A server whose clock moves only when the returned clock is advanced.
    pub async fn spawn_with_manual_clock(config: Config) -> (Self, ManualClock) {
        let clock = ManualClock::starting_now();
        let app = Self::spawn_with(Config {
            clock: clock.clock(),
            ..config
        })
        .await;
        (app, clock)
    }

    /// A server on the database at `url` whose clock moves only when told.
    pub async fn spawn_on_with_manual_clock(url: &str, config: Config) -> (Self, ManualClock) {
        let clock = ManualClock::starting_now();
        let config = Config {
            clock: clock.clock(),
            ..config
        };
        (Self::spawn_on_with(url, config).await, clock)
    }

    /// Like `spawn_with`, but keeps the configured public URL.
    pub async fn spawn_with_exact(config: Config) -> Self {
        Self::spawn_inner(config, false).await
    }

    /// A server on the database at `url` (PostgreSQL, for these tests).
    pub async fn spawn_on(url: &str) -> Self {
        Self::spawn_on_with(url, Config::default()).await
    }

    pub async fn spawn_on_with(url: &str, config: Config) -> Self {
        Self::spawn_inner_on(config, true, Some(url.to_owned())).await
    }

    async fn spawn_inner(config: Config, public_url_is_address: bool) -> Self {
        Self::spawn_inner_on(config, public_url_is_address, None).await
    }

    /// A server listening on `bind` (such as `[::1]:0`, for IPv6 clients).
    pub async fn spawn_listening(bind: &str, config: Config) -> Self {
        Self::spawn_bound(bind, config, true, None).await
    }

    async fn spawn_inner_on(
        config: Config,
        public_url_is_address: bool,
        database: Option<String>,
    ) -> Self {
        Self::spawn_bound("127.0.0.1:0", config, public_url_is_address, database).await
    }

    async fn spawn_bound(
        bind: &str,
        config: Config,
        public_url_is_address: bool,
        database: Option<String>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = database
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("keyward.db").display()));
        let store = keyward_store::open_with_clock(&url, config.clock.clone())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = if public_url_is_address {
            Config {
                public_url: format!("http://{address}"),
                ..config
            }
        } else {
            config
        };
        let proxy = match config.proxy {
            Some(_) => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
            None => None,
        };
        let proxy_address = proxy.as_ref().map(|proxy| proxy.local_addr().unwrap());
        let state = AppState::new(store.clone(), config);
        let server = tokio::spawn(keyward_server::serve_with_proxy(
            listener,
            proxy,
            state.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            address,
            proxy_address,
            store,
            client: reqwest::Client::new(),
            dir,
            state,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Waits until the server's own writes at start-up (its first pruning) are done, then
    /// for `quiet` without a write (a flush of last use it had pending), and returns the count
    /// of write transactions then.
    pub async fn writes_settled(&self, quiet: std::time::Duration) -> u64 {
        let metrics = &self.state.metrics;
        while metrics
            .prune_runs
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut writes = self.store.stats().write_transactions;
        loop {
            tokio::time::sleep(quiet).await;
            let now = self.store.stats().write_transactions;
            if now == writes {
                return now;
            }
            writes = now;
        }
    }

    /// Entries in the server's verification cache.
    pub fn verifier_cache_entries(&self) -> usize {
        self.state.verifier.cache().entries()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub async fn bootstrap(&self, organization: &str) -> Org {
        let created = bootstrap_organization(
            self.store.as_ref(),
            &self.state.config.brand,
            &self.state.config.scopes,
            organization,
            &format!("owner@{}.example", organization.to_lowercase()),
            Some(Password::parse("a long test password".into()).unwrap()),
            self.state.config.clock.now(),
        )
        .await
        .unwrap();
        Org {
            id: created.organization_id,
            key: created.key.expose_secret().to_owned(),
            key_id: created.key_id.to_string(),
        }
    }

    /// Sends a request with an optional Bearer key and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.client.request(method, self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.unwrap()).await
    }

    /// Sends a request with `key` (an admin key) acting for `organization`
    /// (`Keyward-Organization`), with an optional JSON body.
    pub async fn call_for(
        &self,
        method: Method,
        path: &str,
        key: &str,
        organization: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(key)
            .header("keyward-organization", organization);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.unwrap()).await
    }

    /// An admin key made on the host (as `keyward admin-keys create`): (id, key).
    pub async fn admin_key(&self, scopes: &[&str]) -> (String, String) {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let created = keyward_server::admin_keys::create_admin_key(
            self.store.as_ref(),
            &self.state.config.brand,
            &self.state.config.scopes,
            "platform backend",
            &scopes,
            None,
            self.state.config.clock.now(),
        )
        .await
        .unwrap();
        (
            created.record.id.to_string(),
            created.key.expose_secret().to_owned(),
        )
    }

    /// Sends a request with an optional Bearer key and a form body.
    pub async fn call_form(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        form: &[(&str, &str)],
    ) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        read(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Answer {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(key), Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Answer {
        self.call(Method::DELETE, path, Some(key), None).await
    }

    /// Creates an API key with these scopes through the API and returns (id, key).
    pub async fn create_key(&self, with: &str, name: &str, scopes: &[&str]) -> (String, String) {
        let answer = self
            .post(
                "/v1/api-keys",
                with,
                json!({ "name": name, "scopes": scopes }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        (
            answer.body["id"].as_str().unwrap().to_owned(),
            answer.body["key"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a project token with these scopes through the API and returns its key.
    pub async fn create_token(&self, with: &str, project: &str, scopes: &[&str]) -> String {
        let answer = self
            .post(
                &format!("/v1/projects/{project}/tokens"),
                with,
                json!({ "name": "token", "scopes": scopes }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["key"].as_str().unwrap().to_owned()
    }

    pub async fn create_project(&self, key: &str, name: &str) -> String {
        let answer = self
            .post("/v1/projects", key, json!({ "name": name }))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["id"].as_str().unwrap().to_owned()
    }

    pub async fn create_instance(&self, key: &str, project: &str, name: &str) -> String {
        let answer = self
            .post(
                "/v1/instances",
                key,
                json!({ "name": name, "project_id": project, "region": "eu-west-1" }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["id"].as_str().unwrap().to_owned()
    }

    /// The organization's audit log, oldest first: (action, target id) of each event.
    pub async fn audit_trail(&self, organization: OrganizationId) -> Vec<(String, String)> {
        let events = self
            .store
            .list_audit_events(
                organization,
                &keyward_store::AuditFilter::default(),
                keyward_store::Page::first(100),
            )
            .await
            .unwrap();
        assert!(!events.has_more, "more than 100 events");
        events
            .items
            .into_iter()
            .rev()
            .map(|event| (event.action, event.target_id))
            .collect()
    }

    /// Drops the server's task without shutting it down, as a cancelled caller would.
    pub fn abort(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    /// Stops the server gracefully, as SIGTERM does, and waits for it.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

pub async fn read(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let body = if bytes.is_empty() {
        Value::Null
    } else if is_json {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "status {status}: body is not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// An expected audit trail entry.
pub fn event(action: &str, target: &str) -> (String, String) {
    (action.to_owned(), target.to_owned())
}

/// A test that needs what this machine lacks (a browser, Node, an SMTP server) says so in one
/// line and is skipped, unless `KEYWARD_REQUIRE_ALL=1`, where it fails instead.
pub fn unavailable(message: &str) {
    if std::env::var("KEYWARD_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("{message}, and KEYWARD_REQUIRE_ALL=1");
    }
    eprintln!("{message}");
}

/// Serves `router` (a service a test stands up beside Keyward) on a free port of 127.0.0.1,
/// with the peer address known to handlers; returns its address.
pub async fn serve_beside(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    address
}

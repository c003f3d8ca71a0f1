//! Single sign-on against a provider this test controls, over plain HTTP: every way an ID
//! token can be wrong is refused with a page and no session; the person is found again by
//! subject, linked only by a verified email, and given the organizations and roles the
//! claims say. (`browser::sso` signs in through a real OpenID provider in Chromium.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use keyward_server::Config;
use keyward_server::oidc::{Oidc, OidcSettings};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest;

use crate::dashboard::{PASSWORD, Page, Visitor};
use crate::helpers::TestApp;

const CLIENT_ID: &str = "keyward";

/// How the next ID token is made.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Flaw {
    None,
    WrongNonce,
    OtherAudience,
    ExtraAudience,
    WrongAuthorizedParty,
    Expired,
    IssuedInTheFuture,
    UnknownKey,
    AlgNone,
    OtherIssuer,
}

struct Provider {
    /// (kid, key) the JWKS publishes and tokens are signed with.
    key: (String, SigningKey),
    flaw: Flaw,
    /// The claims of the next token beyond iss, aud, exp, iat, nonce.
    claims: Value,
    /// code → (nonce, PKCE challenge, used)
    codes: HashMap<String, (String, String, bool)>,
    next_code: u32,
    jwks_reads: u32,
}

#[derive(Clone)]
struct Mock {
    base: String,
    state: Arc<Mutex<Provider>>,
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32].into()).unwrap()
}

fn jwk(kid: &str, key: &SigningKey) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap()),
    })
}

fn sign(header: &Value, claims: &Value, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.to_bytes()))
}

impl Mock {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mock = Mock {
            base: base.clone(),
            state: Arc::new(Mutex::new(Provider {
                key: ("k1".into(), key(1)),
                flaw: Flaw::None,
                claims: json!({}),
                codes: HashMap::new(),
                next_code: 0,
                jwks_reads: 0,
            })),
        };
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", axum::routing::get({
                let base = base.clone();
                move || async move {
                    axum::Json(json!({
                        "issuer": base,
                        "authorization_endpoint": format!("{base}/authorize"),
                        "token_endpoint": format!("{base}/token"),
                        "jwks_uri": format!("{base}/jwks"),
                        "end_session_endpoint": format!("{base}/logout"),
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["ES256"],
                    }))
                }
            }))
            .route("/jwks", axum::routing::get({
                let state = mock.state.clone();
                move || async move {
                    let mut provider = state.lock().unwrap();
                    provider.jwks_reads += 1;
                    axum::Json(json!({ "keys": [jwk(&provider.key.0, &provider.key.1)] }))
                }
            }))
            .route("/authorize", axum::routing::get({
                let state = mock.state.clone();
                move |axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>| async move {
                    assert_eq!(query["response_type"], "code");
                    assert_eq!(query["client_id"], CLIENT_ID);
                    assert_eq!(query["code_challenge_method"], "S256");
                    let mut provider = state.lock().unwrap();
                    provider.next_code += 1;
                    let code = format!("code-{}", provider.next_code);
                    provider.codes.insert(
                        code.clone(),
                        (query["nonce"].clone(), query["code_challenge"].clone(), false),
                    );
                    let to = format!(
                        "{}?code={code}&state={}",
                        query["redirect_uri"], query["state"]
                    );
                    axum::response::Redirect::to(&to)
                }
            }))
            .route("/token", axum::routing::post({
                let state = mock.state.clone();
                let base = base.clone();
                move |headers: axum::http::HeaderMap, body: String| async move {
                    let form: HashMap<String, String> =
                        form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    let basic = format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode("keyward:s3cret")
                    );
                    assert_eq!(headers["authorization"], basic.as_str());
                    let mut provider = state.lock().unwrap();
                    let Some((nonce, challenge, used)) = provider.codes.get(&form["code"]).cloned()
                    else {
                        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"})));
                    };
                    let verified = B64.encode(sha2::Sha256::digest(form["code_verifier"].as_bytes()));
                    if used || verified != challenge {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"error": "invalid_grant", "error_description": "code used or PKCE wrong"})),
                        );
                    }
                    provider.codes.get_mut(&form["code"]).unwrap().2 = true;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs() as i64;
                    let mut claims = json!({
                        "iss": base, "aud": CLIENT_ID, "iat": now, "exp": now + 300,
                        "nonce": nonce,
                    });
                    for (name, value) in provider.claims.as_object().unwrap() {
                        claims[name] = value.clone();
                    }
                    let (kid, key) = provider.key.clone();
                    let mut header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
                    let mut signer = key;
                    match provider.flaw {
                        Flaw::None => {}
                        Flaw::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
                        Flaw::OtherAudience => claims["aud"] = json!("another-client"),
                        Flaw::ExtraAudience => claims["aud"] = json!([CLIENT_ID, "another-client"]),
                        Flaw::WrongAuthorizedParty => claims["azp"] = json!("another-client"),
                        Flaw::Expired => {
                            claims["iat"] = json!(now - 900);
                            claims["exp"] = json!(now - 600);
                        }
                        Flaw::IssuedInTheFuture => claims["iat"] = json!(now + 600),
                        Flaw::UnknownKey => {
                            header["kid"] = json!("k-stranger");
                            signer = self::key(9);
                        }
                        Flaw::AlgNone => header = json!({"alg": "none", "typ": "JWT"}),
                        Flaw::OtherIssuer => claims["iss"] = json!("https://evil.example.com"),
                    }
                    let id_token = if provider.flaw == Flaw::AlgNone {
                        format!("{}.{}.", B64.encode(header.to_string()), B64.encode(claims.to_string()))
                    } else {
                        sign(&header, &claims, &signer)
                    };
                    (
                        StatusCode::OK,
                        axum::Json(json!({
                            "access_token": "at", "token_type": "Bearer", "expires_in": 300,
                            "id_token": id_token,
                        })),
                    )
                }
            }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        mock
    }

    fn set(&self, flaw: Flaw, claims: Value) {
        let mut provider = self.state.lock().unwrap();
        provider.flaw = flaw;
        provider.claims = claims;
    }

    fn rotate_key(&self) {
        self.state.lock().unwrap().key = ("k2".into(), key(2));
    }

    fn jwks_reads(&self) -> u32 {
        self.state.lock().unwrap().jwks_reads
    }
}

async fn app_with(mock: &Mock, password_login: bool, organization_claim: bool) -> TestApp {
    let settings = OidcSettings {
        name: "Acme ID".into(),
        issuer: mock.base.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: "s3cret".into(),
        organization_claim: organization_claim.then(|| "org_id".to_owned()),
        role_claim: organization_claim.then(|| "keyward_role".to_owned()),
        password_login,
    };
    TestApp::spawn_with(Config {
        oidc: Some(Arc::new(Oidc::new(settings).unwrap())),
        ..Config::default()
    })
    .await
}

fn person(sub: &str, email: &str, verified: bool) -> Value {
    json!({"sub": sub, "email": email, "email_verified": verified, "name": "Ada Lovelace"})
}

/// Starts a sign-in and goes to the provider: the callback path it sends the browser back to.
async fn to_provider(visitor: &mut Visitor<'_>) -> String {
    let start = visitor.get("/login/oidc").await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let at_provider = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(start.location())
        .send()
        .await
        .unwrap();
    let back = at_provider.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    back[back.find("/login/oidc/callback").unwrap()..].to_owned()
}

/// Goes to the provider and back; returns the callback's path and the page it gives.
async fn sign_in(visitor: &mut Visitor<'_>) -> (String, Page) {
    let path = to_provider(visitor).await;
    let page = visitor.get(&path).await;
    (path, page)
}

fn session_cookie(page: &Page) -> bool {
    page.headers.get_all("set-cookie").iter().any(|c| {
        c.to_str().unwrap().starts_with("keyward_session=")
            && !c.to_str().unwrap().starts_with("keyward_session=;")
    })
}

#[tokio::test]
async fn a_person_signs_in_again_and_again_as_the_same_person() {
    let mock = Mock::start().await;
    let app = app_with(&mock, true, false).await;
    mock.set(Flaw::None, person("sub-1", "ada@acme.example", true));

    let login = Visitor::new(&app).get("/login").await;
    assert!(
        login.body.contains("Sign in with Acme ID"),
        "{}",
        login.body
    );
    assert!(
        login.body.contains("action=\"/login\""),
        "the password form stays"
    );

    let mut first = Visitor::new(&app);
    let (_, page) = sign_in(&mut first).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/settings/api-keys");
    assert!(session_cookie(&page));
    let user = app
        .store
        .find_user_by_email(&keyward_core::Email::parse("ada@acme.example").unwrap())
        .await
        .unwrap()
        .expect("created");
    assert_eq!(user.external_id.as_ref().map(|e| e.as_str()), Some("sub-1"));
    assert!(user.password_hash.is_none(), "no password");

    // The second time, with a new email at the provider: the same person, the email moves.
    mock.set(Flaw::None, person("sub-1", "ada@new.example", true));
    let mut second = Visitor::new(&app);
    let (_, page) = sign_in(&mut second).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let moved = app
        .store
        .find_user_by_email(&keyward_core::Email::parse("ada@new.example").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.id, user.id);
    // Without the organization claim, memberships are Keyward's: none yet.
    let keys = second.get("/settings/api-keys").await;
    assert_eq!(keys.status, StatusCode::FORBIDDEN);
    assert!(keys.body.contains("no longer belong to any organization"));

    // Log-out ends the session at the provider too.
    let mut member = Visitor::new(&app);
    member.sign_up("grace@acme.example", "Grace's").await;
    mock.set(Flaw::None, person("sub-g", "grace@acme.example", true));
    let mut grace = Visitor::new(&app);
    let (_, page) = sign_in(&mut grace).await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "a verified email links the account"
    );
    let form = grace.get("/settings/api-keys/new").await;
    // The log-out form's answer goes on to the provider: the policy lets it.
    let policy = form.headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains(&format!("form-action 'self' {};", mock.base)),
        "{policy}"
    );
    let csrf = form.csrf_token();
    let out = grace.post("/logout", &[("csrf_token", &csrf)]).await;
    let expected = format!(
        "{}/logout?client_id=keyward&post_logout_redirect_uri={}",
        mock.base,
        form_urlencoded::byte_serialize(app.url("/login").as_bytes()).collect::<String>()
    );
    assert_eq!(out.location(), expected);
}

#[tokio::test]
async fn every_bad_answer_is_a_page_and_no_session() {
    let mock = Mock::start().await;
    let app = app_with(&mock, true, false).await;
    let cases = [
        (Flaw::WrongNonce, "nonce"),
        (Flaw::OtherAudience, "audience"),
        (Flaw::ExtraAudience, "not a trusted audience"),
        (Flaw::WrongAuthorizedParty, "authorized party"),
        (Flaw::Expired, "expired"),
        (Flaw::IssuedInTheFuture, "future"),
        (Flaw::UnknownKey, "key"),
        (Flaw::AlgNone, "signature verification failed"),
        (Flaw::OtherIssuer, "issuer"),
    ];
    for (flaw, said) in cases {
        mock.set(flaw, person("sub-1", "ada@acme.example", true));
        let mut visitor = Visitor::new(&app);
        let (_, page) = sign_in(&mut visitor).await;
        assert_eq!(
            page.status,
            StatusCode::UNAUTHORIZED,
            "{flaw:?}: {}",
            page.body
        );
        assert!(
            page.body.to_lowercase().contains(&said.to_lowercase()),
            "{flaw:?} should say {said}: {}",
            page.body
        );
        assert!(!session_cookie(&page), "{flaw:?}");
        assert_eq!(
            visitor.get("/settings/api-keys").await.status,
            StatusCode::SEE_OTHER,
            "{flaw:?}: not signed in"
        );
    }
    assert!(
        app.store
            .find_user_by_email(&keyward_core::Email::parse("ada@acme.example").unwrap())
            .await
            .unwrap()
            .is_none(),
        "nobody was created"
    );

    // A state that is not the one this browser started with.
    mock.set(Flaw::None, person("sub-1", "ada@acme.example", true));
    let mut visitor = Visitor::new(&app);
    let path = to_provider(&mut visitor).await;
    let forged = path.replace("state=", "state=x");
    let page = visitor.get(&forged).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("state"), "{}", page.body);
    assert!(!session_cookie(&page));

    // A replayed callback: its sign-in is over (no state), and its code is spent.
    let mut visitor = Visitor::new(&app);
    let (used, page) = sign_in(&mut visitor).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let replay = visitor.get(&used).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    let mut thief = Visitor::new(&app);
    let fresh = thief.get("/login/oidc").await;
    let state = fresh
        .location()
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let code = used
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let replayed = thief
        .get(&format!("/login/oidc/callback?code={code}&state={state}"))
        .await;
    assert_eq!(replayed.status, StatusCode::UNAUTHORIZED);
    assert!(replayed.body.contains("invalid_grant"), "{}", replayed.body);
    assert!(!session_cookie(&replayed));
}

#[tokio::test]
async fn an_unverified_email_never_takes_over_an_account() {
    let mock = Mock::start().await;
    let app = app_with(&mock, true, false).await;
    let mut owner = Visitor::new(&app);
    owner.sign_up("ada@acme.example", "Acme").await;
    mock.set(Flaw::None, person("sub-x", "ada@acme.example", false));
    let mut visitor = Visitor::new(&app);
    let (_, page) = sign_in(&mut visitor).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("has not verified"), "{}", page.body);
    assert!(!session_cookie(&page));
    let user = app
        .store
        .find_user_by_email(&keyward_core::Email::parse("ada@acme.example").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(user.external_id.is_none(), "not linked");
    // A new account from an address the provider has not verified: refused too.
    mock.set(Flaw::None, person("sub-y", "someone@else.example", false));
    let mut visitor = Visitor::new(&app);
    let (_, page) = sign_in(&mut visitor).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        app.store
            .find_user_by_email(&keyward_core::Email::parse("someone@else.example").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // Their password still works.
    let mut again = Visitor::new(&app);
    let page = again.log_in("ada@acme.example", PASSWORD).await;
    assert_eq!(page.location(), "/settings/api-keys");
}

#[tokio::test]
async fn claims_give_organizations_and_roles_and_take_them_back() {
    let mock = Mock::start().await;
    let app = app_with(&mock, true, true).await;
    let (_, admin) = app.admin_key(&["organizations:write"]).await;
    for (name, external_id) in [("Acme", "acme"), ("Globex", "globex")] {
        let created = app
            .post(
                "/v1/organizations",
                &admin,
                json!({"name": name, "external_id": external_id}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
    }
    let claims = |orgs: Value, role: &str| {
        let mut claims = person("sub-1", "ada@acme.example", true);
        claims["org_id"] = orgs;
        claims["keyward_role"] = json!(role);
        claims
    };
    mock.set(
        Flaw::None,
        claims(json!(["acme", "globex", "unknown"]), "admin"),
    );
    let mut visitor = Visitor::new(&app);
    let (_, page) = sign_in(&mut visitor).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let keys = visitor.get("/settings/api-keys").await;
    assert!(
        keys.body.contains("ada@acme.example · admin"),
        "{}",
        keys.body
    );
    assert!(keys.body.contains(">Acme<") && keys.body.contains(">Globex<"));

    // The role changes at the provider: applied at the next sign-in.
    mock.set(Flaw::None, claims(json!("acme"), "member"));
    let mut visitor = Visitor::new(&app);
    sign_in(&mut visitor).await;
    let keys = visitor.get("/settings/api-keys").await;
    assert!(
        keys.body.contains("ada@acme.example · member"),
        "{}",
        keys.body
    );
    assert!(
        !keys.body.contains(">Globex<"),
        "the claim no longer names Globex"
    );

    // No organization claimed: no membership the provider gave is left.
    mock.set(Flaw::None, person("sub-1", "ada@acme.example", true));
    let mut visitor = Visitor::new(&app);
    sign_in(&mut visitor).await;
    assert_eq!(
        visitor.get("/settings/api-keys").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_rotated_signing_key_is_fetched_once_and_password_log_in_can_be_turned_off() {
    let mock = Mock::start().await;
    let app = app_with(&mock, false, false).await;
    mock.set(Flaw::None, person("sub-1", "ada@acme.example", true));
    let mut visitor = Visitor::new(&app);
    let (_, page) = sign_in(&mut visitor).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(mock.jwks_reads(), 1);
    mock.rotate_key();
    let mut visitor = Visitor::new(&app);
    let (_, page) = sign_in(&mut visitor).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(mock.jwks_reads(), 2, "read again once, for the new key");

    // Single sign-on only: no password form, and password log-ins and sign-ups refused.
    let mut stranger = Visitor::new(&app);
    let login = stranger.get("/login").await;
    assert!(login.body.contains("Sign in with Acme ID"));
    assert!(!login.body.contains("action=\"/login\""), "{}", login.body);
    assert!(!login.body.contains("/signup"));
    let posted = stranger
        .post(
            "/login",
            &[("email", "ada@acme.example"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN);
    assert_eq!(stranger.get("/signup").await.status, StatusCode::FORBIDDEN);
}

//! The OpenAPI document: every endpoint with its scope, kept in `docs/openapi.json`.

use reqwest::{Method, StatusCode};

use crate::helpers::TestApp;
use crate::matrix::{Level, rows};

#[test]
fn the_document_describes_every_endpoint_with_its_scope_and_answers() {
    let document = keyward_server::api::openapi_document();
    assert_eq!(document["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    // The matrix's rows are the document's operations, read as the declarations say: each
    // names at most one of Keyward's scopes, and those taking a key document its refusals.
    for row in rows() {
        let operation = &document["paths"][row.path.as_str()][row.method.as_str().to_lowercase()];
        if !matches!(row.level, Level::Public | Level::Signed) {
            for status in ["401", "429"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{} {} lacks {status}",
                    row.method,
                    row.path
                );
            }
        }
        if row.scope.is_some() {
            assert!(
                operation["responses"]["403"].is_object(),
                "{} {} lacks 403",
                row.method,
                row.path
            );
        }
    }
    // The scope catalog in the document is the code's.
    let names: Vec<&str> = document["components"]["schemas"]["Scope"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let builtin = keyward_core::ScopeCatalog::builtin();
    let catalog: Vec<&str> = builtin.iter().map(|(_, s)| s.name.as_str()).collect();
    assert_eq!(names, catalog);
}

#[test]
fn docs_openapi_json_is_the_generated_document() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let generated =
        serde_json::to_string_pretty(keyward_server::api::openapi_document()).unwrap() + "\n";
    if std::env::var_os("KEYWARD_UPDATE_DOCS").is_some() {
        std::fs::write(path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json differs from what the server generates: run \
         KEYWARD_UPDATE_DOCS=1 cargo test -p keyward-server --test it openapi"
    );
}

#[tokio::test]
async fn the_document_and_the_reference_page_are_served_without_a_key() {
    let app = TestApp::spawn().await;
    let served = app.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(&served.body, keyward_server::api::openapi_document());
    let page = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    for row in rows() {
        assert!(
            html.contains(&format!("{} {}", row.method, row.path)),
            "{} {} missing",
            row.method,
            row.path
        );
        if let Some(scope) = row.scope {
            assert!(html.contains(scope.builtin_name().unwrap()));
        }
    }
    // Examples may show URLs; nothing is loaded from one.
    for attribute in ["src=\"http", "href=\"http", "url(http"] {
        assert!(!html.contains(attribute), "no external assets");
    }
}

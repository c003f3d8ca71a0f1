//! Keeps `docs/authorization.md` true: its generated tables must equal what the code says.
//! Set `KEYWARD_UPDATE_DOCS=1` to rewrite them.

use keyward_core::{CredentialKind, Role, ScopeCatalog};

use crate::matrix::{Level, rows};

fn scopes_table() -> String {
    let catalog = ScopeCatalog::builtin();
    let token_scopes = catalog.holdable(CredentialKind::ProjectToken);
    let mut table =
        String::from("| scope | allows | project tokens may hold it |\n| --- | --- | --- |\n");
    for (scope, info) in catalog.iter() {
        let may = if token_scopes.contains(scope) {
            "yes"
        } else if info.level == keyward_core::ScopeLevel::Installation {
            "no (admin keys only)"
        } else {
            "no"
        };
        table.push_str(&format!(
            "| `{}` | {} | {may} |\n",
            info.name, info.description
        ));
    }
    table
}

fn roles_table() -> String {
    let catalog = ScopeCatalog::builtin();
    let roles = [Role::Owner, Role::Admin, Role::Member];
    let mut table = String::from("| scope | owner | admin | member |\n| --- | --- | --- | --- |\n");
    for (scope, info) in catalog.iter() {
        let marks: Vec<_> = roles
            .iter()
            .map(|&role| {
                if catalog.role_cap(role).contains(scope) {
                    "yes"
                } else {
                    "no"
                }
            })
            .collect();
        table.push_str(&format!("| `{}` | {} |\n", info.name, marks.join(" | ")));
    }
    table
}

fn endpoints_table() -> String {
    let mut table =
        String::from("| method | path | scope | project tokens |\n| --- | --- | --- | --- |\n");
    for row in rows() {
        let scope = match (
            row.scope.and_then(|s| s.builtin_name()),
            !row.declares_grants,
        ) {
            (None, _) if row.level == Level::Public => "none (no key needed)".to_owned(),
            (None, _) if row.level == Level::Signed => "none (GitHub's signature)".to_owned(),
            (None, _) => "none (any valid key)".to_owned(),
            (Some(scope), true) => format!("`{scope}`"),
            (Some(scope), false) => format!("`{scope}` and every scope granted"),
        };
        let tokens = match row.level {
            Level::Public | Level::AnyCredential => "yes",
            Level::Signed => "no (not a key's)",
            Level::Project => "own project only",
            Level::Organization => "never (403)",
            Level::Installation => "never (admin keys only)",
        };
        table.push_str(&format!(
            "| {} | `{}` | {scope} | {tokens} |\n",
            row.method, row.path
        ));
    }
    table
}

fn replace_block(document: &str, name: &str, content: &str) -> String {
    let begin = format!("<!-- BEGIN GENERATED: {name} -->\n");
    let end = format!("<!-- END GENERATED: {name} -->");
    let start = document.find(&begin).expect("begin marker") + begin.len();
    let stop = document.find(&end).expect("end marker");
    format!("{}{content}{}", &document[..start], &document[stop..])
}

#[test]
fn authorization_docs_match_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/authorization.md");
    let current = std::fs::read_to_string(path).unwrap();
    let mut expected = current.clone();
    for (name, content) in [
        ("scopes", scopes_table()),
        ("roles", roles_table()),
        ("endpoints", endpoints_table()),
    ] {
        expected = replace_block(&expected, name, &content);
    }
    if std::env::var_os("KEYWARD_UPDATE_DOCS").is_some() {
        std::fs::write(path, &expected).unwrap();
        return;
    }
    assert!(
        current == expected,
        "docs/authorization.md is out of date: run \
         KEYWARD_UPDATE_DOCS=1 cargo test -p keyward-server --test it docs"
    );
}

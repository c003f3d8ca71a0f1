//! `keyward whoami` and `keyward scopes`: the key in use, and what keys may be granted.

use crate::client::table::{cell, print};
use crate::client::{Client, ClientResult};

/// Lists the scopes a key may be granted on the server: Keyward's own and the platform's.
pub async fn scopes(client: &Client) -> ClientResult {
    let catalog = client.get("/v1/scopes").await?;
    client.print(&catalog, |catalog| {
        let rows: Vec<Vec<String>> = catalog["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|scope| {
                ["name", "level", "min_role", "description"]
                    .iter()
                    .map(|field| cell(&scope[field]))
                    .collect()
            })
            .collect();
        print(&["SCOPE", "LEVEL", "LEAST ROLE", "DESCRIPTION"], &rows);
    });
    Ok(())
}

pub async fn whoami(client: &Client) -> ClientResult {
    let me = client.get("/v1/me").await?;
    client.print(&me, |me| {
        print(
            &[
                "ID",
                "KIND",
                "NAME",
                "ORGANIZATION",
                "PROJECT",
                "SCOPES",
                "EXPIRES",
            ],
            &[[
                "id",
                "kind",
                "name",
                "organization_id",
                "project_id",
                "scopes",
                "expires_at",
            ]
            .iter()
            .map(|f| cell(&me[f]))
            .collect()],
        );
    });
    Ok(())
}

//! SQLite's schema migrations, applied by [`migrate::run`] in one `BEGIN IMMEDIATE`
//! transaction, so two processes starting at once do not race.

use sqlx::SqlitePool;

use crate::StoreError;
use crate::migrate::{self, Migration};
use crate::sql::{Query, Read};

/// Append only: a released migration is never edited or reordered.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "dashboard",
        sql: include_str!("../../migrations/sqlite/0002_dashboard.sql"),
    },
    Migration {
        version: 3,
        name: "rate limits",
        sql: include_str!("../../migrations/sqlite/0003_rate_limits.sql"),
    },
    Migration {
        version: 4,
        name: "tokens need a live project",
        sql: include_str!("../../migrations/sqlite/0004_tokens_need_a_live_project.sql"),
    },
    Migration {
        version: 5,
        name: "write probe",
        sql: include_str!("../../migrations/sqlite/0005_write_probe.sql"),
    },
    Migration {
        version: 6,
        name: "audit events",
        sql: include_str!("../../migrations/sqlite/0006_audit_events.sql"),
    },
    Migration {
        version: 7,
        name: "rotation",
        sql: include_str!("../../migrations/sqlite/0007_rotation.sql"),
    },
    Migration {
        version: 8,
        name: "last addresses",
        sql: include_str!("../../migrations/sqlite/0008_last_addresses.sql"),
    },
    Migration {
        version: 9,
        name: "organization policy",
        sql: include_str!("../../migrations/sqlite/0009_organization_policy.sql"),
    },
    Migration {
        version: 10,
        name: "network rules",
        sql: include_str!("../../migrations/sqlite/0010_network_rules.sql"),
    },
    Migration {
        version: 11,
        name: "webhooks",
        sql: include_str!("../../migrations/sqlite/0011_webhooks.sql"),
    },
    Migration {
        version: 12,
        name: "exposure",
        sql: include_str!("../../migrations/sqlite/0012_exposure.sql"),
    },
    Migration {
        version: 13,
        name: "leak policy",
        sql: include_str!("../../migrations/sqlite/0013_leak_policy.sql"),
    },
    Migration {
        version: 14,
        name: "webhook leases",
        sql: include_str!("../../migrations/sqlite/0014_webhook_leases.sql"),
    },
    Migration {
        version: 15,
        name: "credential metadata",
        sql: include_str!("../../migrations/sqlite/0015_credential_metadata.sql"),
    },
    Migration {
        version: 16,
        name: "idempotency keys",
        sql: include_str!("../../migrations/sqlite/0016_idempotency_keys.sql"),
    },
    Migration {
        version: 17,
        name: "platform organizations and admin keys",
        sql: include_str!("../../migrations/sqlite/0017_admin_keys.sql"),
    },
    Migration {
        version: 18,
        name: "portal links",
        sql: include_str!("../../migrations/sqlite/0018_portal_links.sql"),
    },
    Migration {
        version: 19,
        name: "single sign-on",
        sql: include_str!("../../migrations/sqlite/0019_single_sign_on.sql"),
    },
    Migration {
        version: 20,
        name: "email",
        sql: include_str!("../../migrations/sqlite/0020_email.sql"),
    },
    Migration {
        version: 21,
        name: "portal keys",
        sql: include_str!("../../migrations/sqlite/0021_portal_keys.sql"),
    },
    Migration {
        version: 22,
        name: "invitations",
        sql: include_str!("../../migrations/sqlite/0022_invitations.sql"),
    },
    Migration {
        version: 23,
        name: "usage",
        sql: include_str!("../../migrations/sqlite/0023_usage.sql"),
    },
    Migration {
        version: 24,
        name: "usage_routes",
        sql: include_str!("../../migrations/sqlite/0024_usage_routes.sql"),
    },
    Migration {
        version: 25,
        name: "credits",
        sql: include_str!("../../migrations/sqlite/0025_credits.sql"),
    },
    Migration {
        version: 26,
        name: "rate_buckets",
        sql: include_str!("../../migrations/sqlite/0026_rate_buckets.sql"),
    },
    Migration {
        version: 27,
        name: "identity_limits",
        sql: include_str!("../../migrations/sqlite/0027_identity_limits.sql"),
    },
    Migration {
        version: 28,
        name: "key_events",
        sql: include_str!("../../migrations/sqlite/0028_key_events.sql"),
    },
];

pub(super) async fn run(
    pool: &SqlitePool,
    health: &super::WriterHealth,
    now: keyward_core::Timestamp,
) -> Result<(), StoreError> {
    // A migration may rebuild a table (SQLite's way to change a constraint), which drops
    // the table that others refer to: foreign keys are off while the migrations run (on the
    // writer's one connection, outside the transaction, as SQLite requires) and every
    // reference is checked before the transaction commits.
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(pool)
        .await?;
    let migrated = async {
        let mut tx = super::WriteTx::begin(pool, health, now).await?;
        migrate::run(&mut tx, MIGRATIONS).await?;
        let broken = tx
            .all(Query::new("PRAGMA foreign_key_check"), |row| {
                row.text("table")
            })
            .await?;
        if let Some(table) = broken.first() {
            return Err(StoreError::Migration(format!(
                "a migration left rows of {table} referring to rows that do not exist"
            )));
        }
        tx.commit().await
    }
    .await;
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(pool)
        .await?;
    migrated
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::MIGRATIONS;

    /// A database of the version before the platform's organizations, with data in every
    /// table the rebuilds touch, migrated by `open`: nothing lost, every reference intact,
    /// and the new rules in force.
    #[tokio::test]
    async fn rebuilding_tables_keeps_every_row_and_reference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut connection)
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE keyward_migrations (version BIGINT PRIMARY KEY NOT NULL, \
             name TEXT NOT NULL, applied_at BIGINT NOT NULL, checksum TEXT)",
        )
        .execute(&mut connection)
        .await
        .unwrap();
        for migration in MIGRATIONS.iter().filter(|m| m.version <= 16) {
            sqlx::raw_sql(migration.sql)
                .execute(&mut connection)
                .await
                .unwrap();
            sqlx::query("INSERT INTO keyward_migrations VALUES ($1, $2, 0, $3)")
                .bind(migration.version)
                .bind(migration.name)
                .bind(migration.checksum())
                .execute(&mut connection)
                .await
                .unwrap();
        }
        sqlx::raw_sql(
            "INSERT INTO organizations (id, name, name_key, created_at, leak_action) \
             VALUES (x'01', 'Acme', 'acme', 1, 'flag');
             INSERT INTO users VALUES (x'02', 'ada@example.com', '$argon2id$x', 1);
             INSERT INTO memberships VALUES (x'01', x'02', 'owner', 1);
             INSERT INTO sessions VALUES (zeroblob(32), x'02', x'01', 'csrf', 1, 2);
             INSERT INTO projects (id, organization_id, name, name_key, created_at, updated_at) \
             VALUES (x'04', x'01', 'Web', 'web', 1, 1);
             INSERT INTO credentials (id, kind, organization_id, project_id, name, \
             secret_sha256, hint, scopes, created_at, created_by_user, external_id) \
             VALUES (x'03', 'api_key', x'01', NULL, 'ci', randomblob(32), 'h', 'a:b', 1, \
             x'02', 'svc'), (x'05', 'project_token', x'01', x'04', 't', randomblob(32), 'h', \
             'instances:read', 1, NULL, NULL);
             UPDATE credentials SET created_by_credential = x'03' WHERE id = x'05';
             INSERT INTO credential_addresses VALUES (x'03', '192.0.2.1', 5);
             INSERT INTO audit_events (id, organization_id, at, action, actor_type, \
             target_type, target_id, changes) \
             VALUES (x'06', x'01', 1, 'api_key.created', 'system', 'api_key', 'k', '{}');",
        )
        .execute(&mut connection)
        .await
        .unwrap();
        connection.close().await.unwrap();

        let store = crate::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        store.close().await;

        let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
        for (sql, expected) in [
            ("SELECT COUNT(*) FROM organizations WHERE id = x'01'", 1),
            (
                "SELECT COUNT(*) FROM users WHERE password_hash = '$argon2id$x'",
                1,
            ),
            ("SELECT COUNT(*) FROM memberships", 1),
            ("SELECT COUNT(*) FROM sessions", 1),
            (
                "SELECT COUNT(*) FROM credentials WHERE external_id = 'svc'",
                1,
            ),
            (
                "SELECT COUNT(*) FROM credentials WHERE created_by_credential = x'03'",
                1,
            ),
            ("SELECT COUNT(*) FROM credential_addresses", 1),
            ("SELECT COUNT(*) FROM audit_events", 1),
            (
                "SELECT COUNT(*) FROM organizations WHERE leak_action = 'flag'",
                1,
            ),
            // The installation, which holds the admin keys.
            (
                "SELECT COUNT(*) FROM organizations WHERE id = zeroblob(16)",
                1,
            ),
        ] {
            let found = count(sql).fetch_one(&mut connection).await.unwrap();
            assert_eq!(found, expected, "{sql}");
        }
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut connection)
            .await
            .unwrap();
        let broken: Vec<String> =
            sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_check")
                .fetch_all(&mut connection)
                .await
                .unwrap();
        assert!(broken.is_empty(), "{broken:?}");
        // The rules the rebuilt tables carry: still refused, and newly allowed.
        let unrevoke = sqlx::query("UPDATE credentials SET revoked_at = 5 WHERE id = x'03'")
            .execute(&mut connection)
            .await;
        assert!(unrevoke.is_ok());
        let again = sqlx::query("UPDATE credentials SET revoked_at = NULL WHERE id = x'03'")
            .execute(&mut connection)
            .await;
        assert!(again.is_err(), "revocation must stay permanent");
        let stray = sqlx::query(
            "INSERT INTO credentials (id, kind, organization_id, name, secret_sha256, hint, \
             scopes, created_at) VALUES (x'07', 'admin_key', x'01', 'a', randomblob(32), 'h', \
             'organizations:read', 1)",
        )
        .execute(&mut connection)
        .await;
        assert!(
            stray.is_err(),
            "an admin key belongs to the installation only"
        );
        sqlx::query(
            "INSERT INTO organizations (id, name, name_key, created_at) \
             VALUES (x'08', 'ACME', 'acme', 1)",
        )
        .execute(&mut connection)
        .await
        .expect("names are no longer unique");
        let provisioned =
            sqlx::query("INSERT INTO users (id, email, created_at) VALUES (x'09', 'p@e.com', 1)")
                .execute(&mut connection)
                .await;
        assert!(provisioned.is_ok(), "a provisioned person has no password");
        connection.close().await.unwrap();
    }
}

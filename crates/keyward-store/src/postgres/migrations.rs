//! Schema migrations for PostgreSQL, embedded in the binary and applied at start-up in one
//! transaction under an advisory lock, so several nodes starting at once apply them once.

use sqlx::PgPool;

use crate::StoreError;
use crate::migrate::{self, Migration};
use crate::sql::{Query, Write};

/// Append only: a released migration is never edited or reordered.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "tokens need a live project",
        sql: include_str!("../../migrations/postgres/0002_tokens_need_a_live_project.sql"),
    },
    Migration {
        version: 3,
        name: "audit events",
        sql: include_str!("../../migrations/postgres/0003_audit_events.sql"),
    },
    Migration {
        version: 4,
        name: "rotation",
        sql: include_str!("../../migrations/postgres/0004_rotation.sql"),
    },
    Migration {
        version: 5,
        name: "last addresses",
        sql: include_str!("../../migrations/postgres/0005_last_addresses.sql"),
    },
    Migration {
        version: 6,
        name: "organization policy",
        sql: include_str!("../../migrations/postgres/0006_organization_policy.sql"),
    },
    Migration {
        version: 7,
        name: "network rules",
        sql: include_str!("../../migrations/postgres/0007_network_rules.sql"),
    },
    Migration {
        version: 8,
        name: "webhooks",
        sql: include_str!("../../migrations/postgres/0008_webhooks.sql"),
    },
    Migration {
        version: 9,
        name: "exposure",
        sql: include_str!("../../migrations/postgres/0009_exposure.sql"),
    },
    Migration {
        version: 10,
        name: "leak policy",
        sql: include_str!("../../migrations/postgres/0010_leak_policy.sql"),
    },
    Migration {
        version: 11,
        name: "webhook leases",
        sql: include_str!("../../migrations/postgres/0011_webhook_leases.sql"),
    },
    Migration {
        version: 12,
        name: "credential metadata",
        sql: include_str!("../../migrations/postgres/0012_credential_metadata.sql"),
    },
    Migration {
        version: 13,
        name: "idempotency keys",
        sql: include_str!("../../migrations/postgres/0013_idempotency_keys.sql"),
    },
    Migration {
        version: 14,
        name: "platform organizations and admin keys",
        sql: include_str!("../../migrations/postgres/0014_admin_keys.sql"),
    },
    Migration {
        version: 15,
        name: "portal links",
        sql: include_str!("../../migrations/postgres/0015_portal_links.sql"),
    },
    Migration {
        version: 16,
        name: "single sign-on",
        sql: include_str!("../../migrations/postgres/0016_single_sign_on.sql"),
    },
    Migration {
        version: 17,
        name: "email",
        sql: include_str!("../../migrations/postgres/0017_email.sql"),
    },
    Migration {
        version: 18,
        name: "portal keys",
        sql: include_str!("../../migrations/postgres/0018_portal_keys.sql"),
    },
    Migration {
        version: 19,
        name: "invitations",
        sql: include_str!("../../migrations/postgres/0019_invitations.sql"),
    },
    Migration {
        version: 20,
        name: "usage",
        sql: include_str!("../../migrations/postgres/0020_usage.sql"),
    },
    Migration {
        version: 21,
        name: "usage_routes",
        sql: include_str!("../../migrations/postgres/0021_usage_routes.sql"),
    },
    Migration {
        version: 22,
        name: "credits",
        sql: include_str!("../../migrations/postgres/0022_credits.sql"),
    },
    Migration {
        version: 23,
        name: "rate_buckets",
        sql: include_str!("../../migrations/postgres/0023_rate_buckets.sql"),
    },
    Migration {
        version: 24,
        name: "identity_limits",
        sql: include_str!("../../migrations/postgres/0024_identity_limits.sql"),
    },
    Migration {
        version: 25,
        name: "key_events",
        sql: include_str!("../../migrations/postgres/0025_key_events.sql"),
    },
];

/// Any number; the same on every node.
const MIGRATION_LOCK: i64 = 0x006b_6579_7761_7264;

pub(super) async fn run(pool: &PgPool, now: keyward_core::Timestamp) -> Result<(), StoreError> {
    let mut tx = super::Tx {
        tx: pool.begin().await?,
        now,
        events: Vec::new(),
    };
    let lock = Query::new("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK);
    tx.execute(lock).await?;
    migrate::run(&mut tx, MIGRATIONS).await?;
    Ok(tx.tx.commit().await?)
}

//! SQLite's schema migrations, applied by [`migrate::run`] in one `BEGIN IMMEDIATE`
//! transaction, so two processes starting at once do not race.

use sqlx::SqlitePool;

use crate::StoreError;
use crate::migrate::{self, Migration};

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
];

pub(super) async fn run(
    pool: &SqlitePool,
    health: &super::WriterHealth,
    now: keyward_core::Timestamp,
) -> Result<(), StoreError> {
    let mut tx = super::WriteTx::begin(pool, health, now).await?;
    migrate::run(&mut tx, MIGRATIONS).await?;
    tx.commit().await
}

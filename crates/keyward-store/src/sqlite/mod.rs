//! The embedded default: one SQLite file in WAL mode.
//!
//! Writes go through a pool of one connection and start with `BEGIN IMMEDIATE`, so writers
//! queue instead of failing with "database is locked" (another process, such as
//! `keyward bootstrap` next to a running server, waits up to the busy timeout). Reads use a
//! separate pool of read-only connections, which WAL lets run beside the writer.
//! `synchronous = FULL`: a transaction is on disk before its response is sent.

mod credentials;
mod instances;
mod migrations;
mod organizations;
mod projects;
mod sessions;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use keyward_core::{
    CredentialId, Email, InstanceId, KeyDigest, OrganizationId, ProjectId, Role, Timestamp, UserId,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlitePool, Transaction};

use crate::{
    CredentialChanges, CredentialFilter, CredentialRecord, InstanceRecord, LoginAttempt,
    LoginFailures, MemberRecord, MembershipChange, MembershipRecord, NewCredential, NewInstance,
    NewOrganization, NewOwner, NewProject, NewSession, Page, Paged, ProjectChanges,
    ProjectDeletion, ProjectRecord, SessionRecord, Store, StoreError, StoreStats, UsageUpdate,
    UserRecord,
};

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const READ_CONNECTIONS: u32 = 4;

pub struct SqliteStore {
    writer: SqlitePool,
    writer_health: WriterHealth,
    reader: SqlitePool,
    write_transactions: AtomicU64,
    credential_lookups: AtomicU64,
}

impl SqliteStore {
    /// Opens (creating the file and its directory if needed) and migrates the database.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::unsupported(
                url,
                "an in-memory database would lose every key at restart",
            ));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| StoreError::unsupported(url, error.to_string()))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        create_private_file(options.get_filename())?;

        let writer_health = WriterHealth::default();
        let replace = writer_health.replace_connection.clone();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(BUSY_TIMEOUT)
            // A connection whose last transaction failed is closed, and a fresh one opened.
            .before_acquire(move |_, _| {
                let keep = !replace.swap(false, Ordering::SeqCst);
                Box::pin(async move { Ok(keep) })
            })
            .connect_with(options.clone().create_if_missing(true))
            .await
            .map_err(StoreError::open(url))?;
        migrations::run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.read_only(true))
            .await
            .map_err(StoreError::open(url))?;
        Ok(Self {
            writer,
            writer_health,
            reader,
            write_transactions: AtomicU64::new(0),
            credential_lookups: AtomicU64::new(0),
        })
    }

    async fn write(&self) -> Result<WriteTx<'_>, StoreError> {
        self.write_transactions.fetch_add(1, Ordering::Relaxed);
        let begun = match self.writer.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => Ok(tx),
            Err(_) => {
                // The connection may be the one that is confused: try once on a fresh one.
                self.writer_health.failed();
                self.writer.begin_with("BEGIN IMMEDIATE").await
            }
        };
        match begun {
            Ok(tx) => Ok(WriteTx {
                tx,
                unfinished: Unfinished(&self.writer_health),
            }),
            Err(error) => {
                self.writer_health.failed();
                Err(error.into())
            }
        }
    }

    /// After a failed write, whether the database can write again: rewrites one row.
    async fn probe_write(&self) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT OR REPLACE INTO keyward_write_probe (id, at) VALUES (1, ?1)")
            .bind(keyward_core::Timestamp::now().unix_seconds())
            .execute(&mut **tx)
            .await?;
        tx.commit().await
    }
}

/// What the store knows of its writer connection.
#[derive(Default)]
struct WriterHealth {
    /// Set when a commit or a `BEGIN` failed: the pool replaces the connection before its next
    /// use. After a failed commit (a full disk, say), SQLite may have rolled the transaction
    /// back by itself, and the connection's idea of it would be wrong; a new connection is
    /// cheap and certain. (A transaction abandoned for an ordinary reason, a name conflict
    /// say, is rolled back on the same connection.)
    replace_connection: Arc<AtomicBool>,
    /// Set by a write that did not commit, cleared by one that did; readiness checks probe
    /// with a write while it is set.
    last_write_failed: AtomicBool,
}

impl WriterHealth {
    fn failed(&self) {
        self.replace_connection.store(true, Ordering::SeqCst);
        self.last_write_failed.store(true, Ordering::SeqCst);
    }
}

/// A write transaction that, unless committed, counts as a failed write (see
/// [`WriterHealth`]).
struct WriteTx<'s> {
    tx: Transaction<'static, sqlx::Sqlite>,
    unfinished: Unfinished<'s>,
}

/// Marks the write failed when dropped; `commit` disarms it.
struct Unfinished<'s>(&'s WriterHealth);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        self.0.last_write_failed.store(true, Ordering::SeqCst);
    }
}

impl WriteTx<'_> {
    async fn commit(self) -> Result<(), StoreError> {
        let WriteTx { tx, unfinished } = self;
        let health = unfinished.0;
        std::mem::forget(unfinished);
        match tx.commit().await {
            Ok(()) => {
                health.last_write_failed.store(false, Ordering::SeqCst);
                Ok(())
            }
            Err(error) => {
                health.failed();
                Err(error.into())
            }
        }
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Transaction<'static, sqlx::Sqlite>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// Creates the database file's directory (0700) and the file itself (0600) if they do not
/// exist: they hold key digests and password hashes, which are nobody else's business.
/// SQLite gives its `-wal` and `-shm` files the database file's mode. Existing files and
/// directories keep the mode the operator gave them. Opening the file here also turns
/// SQLite's vague "unable to open database file" into the operating system's reason.
fn create_private_file(file: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::DataDirectory {
                path: dir.display().to_string(),
                source,
            })?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(file)
        .map(drop)
        .map_err(|source| StoreError::DatabaseFile {
            path: file.display().to_string(),
            source,
        })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        if self.writer_health.last_write_failed.load(Ordering::SeqCst) {
            self.probe_write().await?;
        }
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            write_transactions: self.write_transactions.load(Ordering::Relaxed),
            credential_lookups: self.credential_lookups.load(Ordering::Relaxed),
        }
    }

    async fn close(&self) {
        // Readers first: the last connection to close checkpoints the WAL into the file.
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn create_organization(
        &self,
        organization: NewOrganization,
        owner: NewOwner,
        first_key: Option<NewCredential>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        organizations::create(&mut tx, &organization, &owner).await?;
        if let Some(first_key) = &first_key {
            credentials::insert(&mut tx, first_key).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        organizations::find_user_by_email(&self.reader, email).await
    }

    async fn memberships_of(&self, user: UserId) -> Result<Vec<MembershipRecord>, StoreError> {
        organizations::memberships_of(&self.reader, user).await
    }

    async fn members(&self, organization: OrganizationId) -> Result<Vec<MemberRecord>, StoreError> {
        organizations::members(&self.reader, organization).await
    }

    async fn add_member(
        &self,
        organization: OrganizationId,
        user: UserId,
        role: Role,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        organizations::add_member(&mut tx, organization, user, role, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn change_member_role(
        &self,
        organization: OrganizationId,
        user: UserId,
        from: Role,
        to: Role,
    ) -> Result<MembershipChange, StoreError> {
        let mut tx = self.write().await?;
        let change =
            organizations::change_role(&mut tx, organization, user, from, Some(to)).await?;
        tx.commit().await?;
        Ok(change)
    }

    async fn remove_member(
        &self,
        organization: OrganizationId,
        user: UserId,
        from: Role,
    ) -> Result<MembershipChange, StoreError> {
        let mut tx = self.write().await?;
        let change = organizations::change_role(&mut tx, organization, user, from, None).await?;
        tx.commit().await?;
        Ok(change)
    }

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sessions::create(&mut tx, &session).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_session(
        &self,
        token_digest: &KeyDigest,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        sessions::find(&self.reader, token_digest, now).await
    }

    async fn set_session_organization(
        &self,
        token_digest: &KeyDigest,
        organization: OrganizationId,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sessions::set_organization(&mut tx, token_digest, organization).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_session(&self, token_digest: &KeyDigest) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sessions::delete(&mut tx, token_digest).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn login_failures(
        &self,
        email: &Email,
        client_ip: &str,
    ) -> Result<Option<LoginFailures>, StoreError> {
        sessions::login_failures(&self.reader, email, client_ip).await
    }

    async fn begin_login_attempt(
        &self,
        email: &Email,
        client_ip: &str,
        at: Timestamp,
        max_failures: u32,
        lockout_seconds: i64,
    ) -> Result<LoginAttempt, StoreError> {
        let mut tx = self.write().await?;
        let attempt = sessions::begin_login_attempt(
            &mut tx,
            email,
            client_ip,
            at,
            max_failures,
            lockout_seconds,
        )
        .await?;
        tx.commit().await?;
        Ok(attempt)
    }

    async fn clear_login_failures(&self, email: &Email, client_ip: &str) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sessions::clear_login_failures(&mut tx, email, client_ip).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_credential_by_digest(
        &self,
        digest: &KeyDigest,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        self.credential_lookups.fetch_add(1, Ordering::Relaxed);
        credentials::find_by_digest(&self.reader, digest).await
    }

    async fn insert_credential(
        &self,
        credential: NewCredential,
    ) -> Result<CredentialRecord, StoreError> {
        let mut tx = self.write().await?;
        let record = credentials::insert(&mut tx, &credential).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn list_credentials(
        &self,
        organization: OrganizationId,
        filter: CredentialFilter,
        page: Page,
    ) -> Result<Paged<CredentialRecord>, StoreError> {
        credentials::list(&self.reader, organization, filter, page).await
    }

    async fn get_credential(
        &self,
        organization: OrganizationId,
        id: CredentialId,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        credentials::get(&self.reader, organization, id).await
    }

    async fn update_credential(
        &self,
        organization: OrganizationId,
        id: CredentialId,
        changes: CredentialChanges,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let mut tx = self.write().await?;
        let record = credentials::update(&mut tx, organization, id, changes).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn revoke_credential(
        &self,
        organization: OrganizationId,
        id: CredentialId,
        at: Timestamp,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let mut tx = self.write().await?;
        let record = credentials::revoke(&mut tx, organization, id, at).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<u64, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write().await?;
        let changed = credentials::record_usage(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(changed)
    }

    async fn insert_project(&self, project: NewProject) -> Result<ProjectRecord, StoreError> {
        let mut tx = self.write().await?;
        let record = projects::insert(&mut tx, project).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn list_projects(
        &self,
        organization: OrganizationId,
        only: Option<ProjectId>,
        page: Page,
    ) -> Result<Paged<ProjectRecord>, StoreError> {
        projects::list(&self.reader, organization, only, page).await
    }

    async fn get_project(
        &self,
        organization: OrganizationId,
        id: ProjectId,
    ) -> Result<Option<ProjectRecord>, StoreError> {
        projects::get(&self.reader, organization, id).await
    }

    async fn update_project(
        &self,
        organization: OrganizationId,
        id: ProjectId,
        changes: ProjectChanges,
        at: Timestamp,
    ) -> Result<Option<ProjectRecord>, StoreError> {
        let mut tx = self.write().await?;
        let record = projects::update(&mut tx, organization, id, changes, at).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn delete_project(
        &self,
        organization: OrganizationId,
        id: ProjectId,
        at: Timestamp,
    ) -> Result<ProjectDeletion, StoreError> {
        let mut tx = self.write().await?;
        let outcome = projects::delete(&mut tx, organization, id, at).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn insert_instance(&self, instance: NewInstance) -> Result<InstanceRecord, StoreError> {
        let mut tx = self.write().await?;
        let record = instances::insert(&mut tx, instance).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn list_instances(
        &self,
        organization: OrganizationId,
        project: Option<ProjectId>,
        page: Page,
    ) -> Result<Paged<InstanceRecord>, StoreError> {
        instances::list(&self.reader, organization, project, page).await
    }

    async fn get_instance(
        &self,
        organization: OrganizationId,
        id: InstanceId,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        instances::get(&self.reader, organization, id).await
    }

    async fn delete_instance(
        &self,
        organization: OrganizationId,
        id: InstanceId,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let deleted = instances::delete(&mut tx, organization, id).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}

use crate::decode::{corrupt, timestamp};

//! PostgreSQL, for several stateless nodes sharing one database.
//!
//! Same tables and rules as the SQLite store. Writes use `READ COMMITTED` transactions with
//! explicit row locks where a check must hold until the write (owner counts, project
//! deletion, the log-in throttle). Changes that other nodes' caches must follow publish the
//! credential's digest with `pg_notify` in their own transaction; every node listens (see
//! [`listen_for_invalidations`]) and, when its listening connection drops, tells its cache to
//! forget everything, since it may have missed something.

mod credentials;
mod instances;
mod migrations;
mod organizations;
mod projects;
mod sessions;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use keyward_core::{
    CredentialId, Email, InstanceId, KeyDigest, OrganizationId, ProjectId, Role, Timestamp, UserId,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres, Transaction};
use tokio::sync::broadcast;

use crate::{
    CredentialChanges, CredentialFilter, CredentialRecord, InstanceRecord, Invalidation,
    LoginAttempt, LoginFailures, MemberRecord, MembershipChange, MembershipRecord, NewCredential,
    NewInstance, NewOrganization, NewOwner, NewProject, NewSession, Page, Paged, ProjectChanges,
    ProjectDeletion, ProjectRecord, SessionRecord, Store, StoreError, StoreStats, UsageUpdate,
    UserRecord,
};

/// The channel every node listens on; payloads are hex SHA-256 digests.
pub(crate) const INVALIDATION_CHANNEL: &str = "keyward_invalidations";
/// How long a request waits for a connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_CONNECTIONS: u32 = 10;

pub struct PgStore {
    pool: PgPool,
    invalidations: broadcast::Sender<Invalidation>,
    write_transactions: AtomicU64,
    credential_lookups: AtomicU64,
}

impl PgStore {
    /// Connects, migrates, and starts listening for other nodes' invalidations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|error| StoreError::unsupported(url, error.to_string()))?;
        // One connection first, so that a refused connection, a wrong password or a missing
        // database is reported at once and as such, not as a pool time-out.
        let mut first = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| {
                let silent = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", ACQUIRE_TIMEOUT.as_secs()),
                );
                StoreError::open(url)(sqlx::Error::Io(silent))
            })?
            .map_err(StoreError::open(url))?;
        first.ping().await.map_err(StoreError::open(url))?;
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(StoreError::open(url))?;
        migrations::run(&pool).await?;
        let (invalidations, _) = broadcast::channel(4096);
        tokio::spawn(listen_for_invalidations(
            pool.clone(),
            invalidations.clone(),
        ));
        Ok(Self {
            pool,
            invalidations,
            write_transactions: AtomicU64::new(0),
            credential_lookups: AtomicU64::new(0),
        })
    }

    async fn write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.write_transactions.fetch_add(1, Ordering::Relaxed);
        Ok(self.pool.begin().await?)
    }
}

/// Forwards `keyward_invalidations` notifications to the node's cache. Whenever the listening
/// connection is lost, sends `ForgetAll` (notifications may have been missed), reconnects
/// with back-off, and sends `ForgetAll` again once listening, for what changed in between.
/// Ends when the pool is closed.
async fn listen_for_invalidations(pool: PgPool, sender: broadcast::Sender<Invalidation>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        if pool.is_closed() {
            return;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if listener.listen(INVALIDATION_CHANNEL).await.is_err() {
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(50);
        let _ = sender.send(Invalidation::ForgetAll);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match parse_digest(notification.payload()) {
                    Some(digest) => {
                        let _ = sender.send(Invalidation::Forget(digest));
                    }
                    None => {
                        let _ = sender.send(Invalidation::ForgetAll);
                    }
                },
                Ok(None) | Err(_) => {
                    let _ = sender.send(Invalidation::ForgetAll);
                    break;
                }
            }
        }
    }
}

fn parse_digest(hex: &str) -> Option<KeyDigest> {
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(KeyDigest(digest))
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            write_transactions: self.write_transactions.load(Ordering::Relaxed),
            credential_lookups: self.credential_lookups.load(Ordering::Relaxed),
        }
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn invalidations(&self) -> Option<broadcast::Receiver<Invalidation>> {
        Some(self.invalidations.subscribe())
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
        organizations::find_user_by_email(&self.pool, email).await
    }

    async fn memberships_of(&self, user: UserId) -> Result<Vec<MembershipRecord>, StoreError> {
        organizations::memberships_of(&self.pool, user).await
    }

    async fn members(&self, organization: OrganizationId) -> Result<Vec<MemberRecord>, StoreError> {
        organizations::members(&self.pool, organization).await
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
        sessions::find(&self.pool, token_digest, now).await
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
        sessions::login_failures(&self.pool, email, client_ip).await
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
        credentials::find_by_digest(&self.pool, digest).await
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
        credentials::list(&self.pool, organization, filter, page).await
    }

    async fn get_credential(
        &self,
        organization: OrganizationId,
        id: CredentialId,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        credentials::get(&self.pool, organization, id).await
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
        projects::list(&self.pool, organization, only, page).await
    }

    async fn get_project(
        &self,
        organization: OrganizationId,
        id: ProjectId,
    ) -> Result<Option<ProjectRecord>, StoreError> {
        projects::get(&self.pool, organization, id).await
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
        instances::list(&self.pool, organization, project, page).await
    }

    async fn get_instance(
        &self,
        organization: OrganizationId,
        id: InstanceId,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        instances::get(&self.pool, organization, id).await
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

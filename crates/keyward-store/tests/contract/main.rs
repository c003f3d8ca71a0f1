//! The store contract: what every `Store` implementation must do, run against each backend.

mod audit;
mod credentials;
mod credits;
mod idempotency;
mod identities;
mod invitations;
mod key_events;
mod organizations;
mod people;
mod postgres_specific;
mod rates;
mod resources;
mod sqlite_specific;
mod usage;
mod webhooks;

use std::sync::{Arc, OnceLock};

use keyward_core::{
    Brand, CredentialId, CredentialKind, Email, Name, OrganizationId, PlaintextKey, ProjectId,
    ScopeCatalog, ScopeNames, Timestamp, UserId,
};
use keyward_store::testing::TempPostgres;
use keyward_store::{Creator, NewCredential, NewOrganization, NewOwner, Store};
use tempfile::TempDir;

/// A store on a fresh database, removed when dropped.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub url: String,
    _dir: TempDir,
}

/// One PostgreSQL cluster for the whole test binary; each test gets its own database in it.
/// `None` when PostgreSQL is not installed (and `KEYWARD_REQUIRE_ALL` is not set).
pub fn cluster() -> Option<&'static TempPostgres> {
    static CLUSTER: OnceLock<Option<TempPostgres>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| TempPostgres::start().unwrap_or_else(|error| panic!("{error}")))
        .as_ref()
}

impl TestDb {
    pub async fn postgres() -> Option<Self> {
        let url = cluster()?.create_database().await.unwrap();
        let store = keyward_store::open(&url).await.unwrap();
        Some(Self {
            store,
            url,
            _dir: tempfile::tempdir().unwrap(),
        })
    }

    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("keyward.db").display());
        let store = keyward_store::open(&url).await.unwrap();
        Self {
            store,
            url,
            _dir: dir,
        }
    }
}

/// Runs each named contract test against every backend.
macro_rules! contract {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = crate::TestDb::sqlite().await;
                    crate::$module::$test(db.store.as_ref()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let Some(db) = crate::TestDb::postgres().await else { return };
                    crate::$module::$test(db.store.as_ref()).await;
                    db.store.close().await;
                }
            )*
        }
    };
}

contract! {
    audit::every_change_records_one_event_with_its_actor,
    audit::members_and_sessions_are_recorded,
    audit::a_change_that_fails_after_its_event_leaves_neither,
    audit::old_events_are_pruned_in_batches,
    organizations::organization_names_are_unique_only_when_asked,
    organizations::platform_organizations_are_found_by_external_id,
    organizations::single_sign_on_finds_one_person_and_syncs_claimed_memberships,
    organizations::suspension_and_deletion_reach_every_credential,
    organizations::owners_are_new_or_existing_users,
    people::members_have_roles_and_an_organization_keeps_an_owner,
    people::sessions_carry_the_current_membership,
    people::portal_links_open_once_for_the_person_the_platform_names,
    people::a_key_with_credits_adds_no_member_and_opens_no_portal_link,
    people::a_new_address_from_the_provider_spends_the_old_reset_links,
    people::failed_logins_are_counted_per_email_and_address,
    credentials::credentials_are_found_by_digest,
    credentials::lists_page_newest_first_by_kind_and_project,
    credentials::revocation_is_permanent_and_stays_in_its_organization,
    credentials::scope_usage_counts_usable_credentials_by_scope_list,
    credentials::a_rotation_links_two_credentials_and_ends_once,
    credentials::last_use_never_moves_backwards,
    credentials::the_last_five_addresses_are_kept,
    credentials::new_credentials_meet_the_organizations_policy,
    credentials::credentials_can_be_renamed_and_rate_limited,
    credentials::an_exposure_report_marks_and_revokes_once,
    credentials::external_ids_and_meta_are_kept_filtered_and_audited,
    resources::project_names_are_unique_among_live_projects,
    resources::deleting_a_project_revokes_its_tokens,
    resources::instances_belong_to_live_projects_of_their_organization,
    resources::tokens_cannot_outlive_their_project,
    webhooks::endpoints_are_managed_within_their_organization,
    webhooks::changes_write_messages_for_subscribed_endpoints_only,
    webhooks::deliveries_are_claimed_once_and_retried_until_done,
    webhooks::expiry_notices_are_written_once_each,
    webhooks::a_lapsed_lease_or_a_disabled_endpoint_sends_nothing_twice,
    webhooks::a_busy_endpoint_holds_only_its_share_and_releases_come_back,
    webhooks::one_credentials_messages_sort_in_the_order_of_its_changes,
    webhooks::an_organization_holds_only_its_share,
    idempotency::a_key_is_claimed_once_answered_and_kept_for_a_day,
    idempotency::abandoned_and_expired_claims_count_as_none,
    invitations::invitations_are_open_once_per_address_and_answered_once,
    invitations::concurrent_invitations_and_answers_are_decided_once,
    invitations::invitation_emails_are_limited_per_address,
    usage::usage_counts_add_up_per_hour_and_outcome_and_are_pruned,
    credits::credits_are_leased_given_back_and_set_in_generations,
    credits::concurrent_takes_never_hand_out_more_than_the_balance,
    rates::rate_buckets_hand_out_what_gcra_allows_and_take_back_the_unspent,
    rates::concurrent_rate_takes_never_hand_out_more_than_the_burst,
    rates::a_give_back_counts_only_while_no_other_take_came_since,
    rates::a_slow_clock_never_hands_a_fast_one_more,
    rates::rate_buckets_a_day_old_are_pruned_and_read_the_same,
    identities::identity_limits_are_read_with_their_credentials_and_kept_from_limited_keys,
    identities::concurrent_settings_and_removals_of_one_identity_never_fail,
    key_events::key_events_are_numbered_in_commit_order_and_a_reader_misses_none,
    key_events::key_events_name_the_change_and_are_pruned_behind_a_horizon,
}

pub fn name(text: &str) -> Name {
    Name::parse(text).unwrap()
}

pub fn scope_names(names: &[&str]) -> ScopeNames {
    ScopeNames::from_storage(&names.join(" ")).unwrap()
}

/// Every built-in scope.
pub fn all_scopes() -> ScopeNames {
    let catalog = ScopeCatalog::builtin();
    catalog.to_names(&catalog.all())
}

/// Creates an organization with a new owner and returns it with its first key's id.
pub async fn organization(store: &dyn Store, org_name: &str) -> (OrganizationId, CredentialId) {
    organization_owned_by(store, org_name, UserId::generate()).await
}

/// Creates an organization whose new owner is `owner`, with its first key.
pub async fn organization_owned_by(
    store: &dyn Store,
    org_name: &str,
    owner: UserId,
) -> (OrganizationId, CredentialId) {
    let id = OrganizationId::generate();
    let key = new_credential(id, Creator::User(owner), None, "bootstrap", all_scopes());
    let key_id = key.id;
    store
        .create_organization(
            &keyward_store::AuditContext::SYSTEM,
            NewOrganization {
                id,
                name: name(org_name),
                created_at: Timestamp::now(),
                external_id: None,
                policy: Default::default(),
                unique_name: false,
            },
            NewOwner::Create {
                id: owner,
                email: Email::parse(&format!("{}@example.com", owner)).unwrap(),
                password_hash: "$argon2id$not-checked-here".into(),
            },
            Some(key),
        )
        .await
        .unwrap();
    (id, key_id)
}

pub fn new_credential(
    organization: OrganizationId,
    created_by: Creator,
    project: Option<ProjectId>,
    credential_name: &str,
    scopes: ScopeNames,
) -> NewCredential {
    let kind = if project.is_some() {
        CredentialKind::ProjectToken
    } else {
        CredentialKind::ApiKey
    };
    let key = PlaintextKey::generate(&Brand::default(), kind).unwrap();
    NewCredential {
        id: CredentialId::generate(kind),
        organization_id: organization,
        project_id: project,
        name: name(credential_name),
        digest: key.digest(),
        hint: key.hint(),
        scopes,
        created_at: Timestamp::now(),
        expires_at: None,
        rate_limit: None,
        allowed_cidrs: None,
        created_by,
        rotated_from: None,
        metadata: keyward_core::Metadata::default(),
        credits: None,
    }
}

-- Organizations that belong to the platform, and admin keys.
--
-- Organizations gain the platform's id for them (`external_id`, one live organization per
-- id), suspension and deletion; their names need no longer be unique.
--
-- People the platform provisions have no password (`password_hash` NULL): they sign in
-- through the platform; it may give its id for them and a display name.
--
-- Admin keys (`kind = 'admin_key'`) are credentials like the others, held by the installation:
-- the organizations row with the nil id, which no endpoint ever finds, lists or acts for.
--
-- SQLite cannot drop a UNIQUE, NOT NULL or CHECK constraint in place, so `organizations`,
-- `users` and `credentials` are rebuilt the way its documentation prescribes
-- (https://sqlite.org/lang_altertable.html#otheralter): create, copy, drop, rename, in the
-- migrations' one transaction, which runs with foreign keys off and checks them all before
-- it commits (see `sqlite::migrations::run`).

CREATE TABLE organizations_rebuilt (
    id BLOB PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- Lowercased name, for `name_prefix=` and `bootstrap`'s check; no longer unique.
    name_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    max_lifetime_days INTEGER
        CHECK (max_lifetime_days IS NULL OR max_lifetime_days BETWEEN 1 AND 3650),
    require_expiry INTEGER NOT NULL DEFAULT 0 CHECK (require_expiry IN (0, 1)),
    leak_action TEXT NOT NULL DEFAULT 'revoke' CHECK (leak_action IN ('revoke', 'flag')),
    -- The platform's own id for the customer.
    external_id TEXT CHECK (external_id IS NULL OR length(external_id) BETWEEN 1 AND 255),
    -- While set, every credential of the organization is refused.
    suspended_at INTEGER,
    -- Deleted organizations stay, so that their revoked credentials keep their history.
    deleted_at INTEGER
);

INSERT INTO organizations_rebuilt (
    id, name, name_key, created_at, max_lifetime_days, require_expiry, leak_action
)
SELECT id, name, name_key, created_at, max_lifetime_days, require_expiry, leak_action
FROM organizations;

DROP TABLE organizations;
ALTER TABLE organizations_rebuilt RENAME TO organizations;

CREATE INDEX organizations_by_name ON organizations (name_key, id);
CREATE UNIQUE INDEX organizations_by_external_id ON organizations (external_id)
    WHERE external_id IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE users_rebuilt (
    id BLOB PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    -- Argon2id PHC string; NULL for a person the platform provisioned.
    password_hash TEXT,
    created_at INTEGER NOT NULL,
    -- What the platform provisioning the person gave: its id for them, and a display name.
    external_id TEXT CHECK (external_id IS NULL OR length(external_id) BETWEEN 1 AND 255),
    name TEXT CHECK (name IS NULL OR length(name) BETWEEN 1 AND 400)
);
INSERT INTO users_rebuilt (id, email, password_hash, created_at)
SELECT id, email, password_hash, created_at FROM users;
DROP TABLE users;
ALTER TABLE users_rebuilt RENAME TO users;

INSERT INTO organizations (id, name, name_key, created_at)
SELECT zeroblob(16), 'Installation', '', CAST(strftime('%s', 'now') AS INTEGER)
WHERE NOT EXISTS (SELECT 1 FROM organizations WHERE id = zeroblob(16));

CREATE TABLE credentials_rebuilt (
    id BLOB PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('api_key', 'project_token', 'admin_key')),
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    project_id BLOB REFERENCES projects (id),
    name TEXT NOT NULL,
    -- SHA-256 of the whole key. The key itself is never stored.
    secret_sha256 BLOB NOT NULL UNIQUE CHECK (length(secret_sha256) = 32),
    hint TEXT NOT NULL,
    -- Scope names separated by single spaces, in catalog order.
    scopes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    last_used_at INTEGER,
    last_used_ip TEXT,
    created_by_user BLOB REFERENCES users (id),
    created_by_credential BLOB REFERENCES credentials (id),
    rate_limit_requests INTEGER
        CHECK (rate_limit_requests IS NULL OR rate_limit_requests > 0),
    rate_limit_per_seconds INTEGER
        CHECK (rate_limit_per_seconds IS NULL OR rate_limit_per_seconds > 0),
    rotation_ends_at INTEGER,
    rotated_to BLOB REFERENCES credentials (id),
    rotated_from BLOB REFERENCES credentials (id),
    allowed_cidrs TEXT CHECK (allowed_cidrs IS NULL OR length(allowed_cidrs) BETWEEN 1 AND 4096),
    exposed_at INTEGER,
    exposed_source TEXT
        CHECK (exposed_source IS NULL OR length(exposed_source) BETWEEN 1 AND 500),
    external_id TEXT CHECK (external_id IS NULL OR length(external_id) BETWEEN 1 AND 255),
    meta TEXT CHECK (meta IS NULL OR length(meta) BETWEEN 2 AND 1024),
    CHECK ((kind = 'project_token') = (project_id IS NOT NULL)),
    -- Admin keys are the installation's, and the installation holds nothing else.
    CHECK ((kind = 'admin_key') = (organization_id = zeroblob(16)))
);

INSERT INTO credentials_rebuilt (
    id, kind, organization_id, project_id, name, secret_sha256, hint, scopes, created_at,
    expires_at, revoked_at, last_used_at, last_used_ip, created_by_user, created_by_credential,
    rate_limit_requests, rate_limit_per_seconds, rotation_ends_at, rotated_to, rotated_from,
    allowed_cidrs, exposed_at, exposed_source, external_id, meta
)
SELECT
    id, kind, organization_id, project_id, name, secret_sha256, hint, scopes, created_at,
    expires_at, revoked_at, last_used_at, last_used_ip, created_by_user, created_by_credential,
    rate_limit_requests, rate_limit_per_seconds, rotation_ends_at, rotated_to, rotated_from,
    allowed_cidrs, exposed_at, exposed_source, external_id, meta
FROM credentials;

DROP TABLE credentials;
ALTER TABLE credentials_rebuilt RENAME TO credentials;

CREATE INDEX credentials_by_organization ON credentials (organization_id, kind, id);
CREATE INDEX credentials_by_project ON credentials (project_id, id);
CREATE INDEX credentials_by_external_id ON credentials (organization_id, external_id, id)
    WHERE external_id IS NOT NULL;

CREATE TRIGGER credentials_revocation_is_permanent
BEFORE UPDATE OF revoked_at ON credentials
WHEN OLD.revoked_at IS NOT NULL AND (NEW.revoked_at IS NULL OR NEW.revoked_at != OLD.revoked_at)
BEGIN
    SELECT RAISE(ABORT, 'revocation is permanent');
END;

CREATE TRIGGER credentials_digest_is_immutable
BEFORE UPDATE OF secret_sha256 ON credentials
WHEN NEW.secret_sha256 != OLD.secret_sha256
BEGIN
    SELECT RAISE(ABORT, 'a credential digest never changes');
END;

CREATE TRIGGER credentials_need_a_live_project
BEFORE INSERT ON credentials
WHEN NEW.project_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM projects
    WHERE id = NEW.project_id AND organization_id = NEW.organization_id AND deleted_at IS NULL
)
BEGIN
    SELECT RAISE(ABORT, 'keyward: the project is deleted or not in this organization');
END;

CREATE TRIGGER credentials_rotation_is_permanent
BEFORE UPDATE OF rotation_ends_at, rotated_to ON credentials
WHEN OLD.rotation_ends_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a rotation cannot be changed');
END;

-- The installation's audit log: admin keys' events, and organizations' lifecycle events
-- (which are in the organization's own log as well).
ALTER TABLE audit_events ADD COLUMN installation INTEGER NOT NULL DEFAULT 0
    CHECK (installation IN (0, 1));
CREATE INDEX audit_events_of_installation ON audit_events (id) WHERE installation = 1;

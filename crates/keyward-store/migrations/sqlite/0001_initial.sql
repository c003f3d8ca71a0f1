-- Keyward's first schema for SQLite. Released migrations are never edited; add a new file.
-- Ids are UUIDv7 as 16-byte BLOBs, times are whole UTC seconds since the Unix epoch.

CREATE TABLE organizations (
    id BLOB PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- Lowercased name: one organization per name, whatever the case.
    name_key TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE users (
    id BLOB PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE memberships (
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    user_id BLOB NOT NULL REFERENCES users (id),
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE projects (
    id BLOB PRIMARY KEY NOT NULL,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- Deleted projects stay, so that their revoked tokens keep their history.
    deleted_at INTEGER
);
CREATE UNIQUE INDEX projects_live_name ON projects (organization_id, name_key)
    WHERE deleted_at IS NULL;
CREATE INDEX projects_by_organization ON projects (organization_id, id);

CREATE TABLE instances (
    id BLOB PRIMARY KEY NOT NULL,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    project_id BLOB NOT NULL REFERENCES projects (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    region TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('provisioning', 'running', 'stopped')),
    created_at INTEGER NOT NULL,
    UNIQUE (project_id, name_key)
);
CREATE INDEX instances_by_organization ON instances (organization_id, id);
CREATE INDEX instances_by_project ON instances (project_id, id);

CREATE TABLE credentials (
    id BLOB PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('api_key', 'project_token')),
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
    CHECK ((kind = 'project_token') = (project_id IS NOT NULL))
);
CREATE INDEX credentials_by_organization ON credentials (organization_id, kind, id);
CREATE INDEX credentials_by_project ON credentials (project_id, id);

-- Revocation is permanent, and a stored digest never changes.
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

-- Keyward's schema for PostgreSQL: the same tables and rules as the SQLite schema (its
-- migrations 1 to 3), for several nodes sharing one database. Released migrations are never
-- edited; add a new file. Ids are UUIDv7, times whole UTC seconds since the Unix epoch.

CREATE TABLE organizations (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id UUID PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    organization_id UUID NOT NULL REFERENCES organizations (id),
    user_id UUID NOT NULL REFERENCES users (id),
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE projects (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX projects_live_name ON projects (organization_id, name_key)
    WHERE deleted_at IS NULL;
CREATE INDEX projects_by_organization ON projects (organization_id, id);

CREATE TABLE instances (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    project_id UUID NOT NULL REFERENCES projects (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    region TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('provisioning', 'running', 'stopped')),
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, name_key)
);
CREATE INDEX instances_by_organization ON instances (organization_id, id);
CREATE INDEX instances_by_project ON instances (project_id, id);

CREATE TABLE credentials (
    id UUID PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('api_key', 'project_token')),
    organization_id UUID NOT NULL REFERENCES organizations (id),
    project_id UUID REFERENCES projects (id),
    name TEXT NOT NULL,
    -- SHA-256 of the whole key. The key itself is never stored.
    secret_sha256 BYTEA NOT NULL UNIQUE CHECK (length(secret_sha256) = 32),
    hint TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT,
    last_used_ip TEXT,
    created_by_user UUID REFERENCES users (id),
    created_by_credential UUID REFERENCES credentials (id),
    rate_limit_requests BIGINT CHECK (rate_limit_requests IS NULL OR rate_limit_requests > 0),
    rate_limit_per_seconds BIGINT
        CHECK (rate_limit_per_seconds IS NULL OR rate_limit_per_seconds > 0),
    CHECK ((kind = 'project_token') = (project_id IS NOT NULL))
);
CREATE INDEX credentials_by_organization ON credentials (organization_id, kind, id);
CREATE INDEX credentials_by_project ON credentials (project_id, id);

-- Revocation is permanent, and a stored digest never changes.
CREATE FUNCTION keyward_credentials_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        RAISE EXCEPTION 'revocation is permanent';
    END IF;
    IF NEW.secret_sha256 <> OLD.secret_sha256 THEN
        RAISE EXCEPTION 'a credential digest never changes';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER credentials_guard BEFORE UPDATE ON credentials
    FOR EACH ROW EXECUTE FUNCTION keyward_credentials_guard();

CREATE TABLE sessions (
    token_sha256 BYTEA PRIMARY KEY CHECK (length(token_sha256) = 32),
    user_id UUID NOT NULL REFERENCES users (id),
    organization_id UUID REFERENCES organizations (id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE login_failures (
    email TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    failures BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL,
    PRIMARY KEY (email, client_ip)
);

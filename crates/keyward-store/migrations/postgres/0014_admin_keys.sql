-- Organizations that belong to the platform, and admin keys.
--
-- Organizations gain the platform's id for them (`external_id`, one live organization per
-- id), suspension and deletion; their names need no longer be unique.
ALTER TABLE organizations DROP CONSTRAINT organizations_name_key_key;
ALTER TABLE organizations
    ADD COLUMN external_id TEXT
        CHECK (external_id IS NULL OR length(external_id) BETWEEN 1 AND 255),
    ADD COLUMN suspended_at BIGINT,
    ADD COLUMN deleted_at BIGINT;
CREATE INDEX organizations_by_name ON organizations (name_key, id);
CREATE UNIQUE INDEX organizations_by_external_id ON organizations (external_id)
    WHERE external_id IS NOT NULL AND deleted_at IS NULL;

-- People the platform provisions have no password: they sign in through the platform; it
-- may give its id for them and a display name.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
-- What the platform provisioning the person gave: its id for them, and a display name.
ALTER TABLE users
    ADD COLUMN external_id TEXT
        CHECK (external_id IS NULL OR length(external_id) BETWEEN 1 AND 255),
    ADD COLUMN name TEXT CHECK (name IS NULL OR length(name) BETWEEN 1 AND 400);

-- Admin keys (`kind = 'admin_key'`) are credentials like the others, held by the installation:
-- the organizations row with the nil id, which no endpoint ever finds, lists or acts for.
INSERT INTO organizations (id, name, name_key, created_at)
VALUES ('00000000-0000-0000-0000-000000000000', 'Installation', '',
        EXTRACT(EPOCH FROM now())::BIGINT)
ON CONFLICT (id) DO NOTHING;

ALTER TABLE credentials DROP CONSTRAINT credentials_kind_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_kind_check
    CHECK (kind IN ('api_key', 'project_token', 'admin_key'));
-- Admin keys are the installation's, and the installation holds nothing else.
ALTER TABLE credentials ADD CONSTRAINT credentials_admin_keys_are_the_installations
    CHECK ((kind = 'admin_key') = (organization_id = '00000000-0000-0000-0000-000000000000'));

-- The installation's audit log: admin keys' events, and organizations' lifecycle events
-- (which are in the organization's own log as well).
ALTER TABLE audit_events ADD COLUMN installation BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX audit_events_of_installation ON audit_events (id) WHERE installation;

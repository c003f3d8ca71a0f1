-- The platform's own id for whoever uses a credential (1 to 255 printable ASCII characters,
-- not unique) and `meta`, a JSON object of at most 1 KiB returned wherever the credential is
-- checked. Both are checked by the application; the constraints keep the limits honest.
ALTER TABLE credentials ADD COLUMN external_id TEXT
    CHECK (external_id IS NULL OR length(external_id) BETWEEN 1 AND 255);
ALTER TABLE credentials ADD COLUMN meta TEXT
    CHECK (meta IS NULL OR length(meta) BETWEEN 2 AND 1024);
-- `GET /v1/api-keys?external_id=…`: an organization's credentials for one of the platform's
-- users.
CREATE INDEX credentials_by_external_id ON credentials (organization_id, external_id, id)
    WHERE external_id IS NOT NULL;

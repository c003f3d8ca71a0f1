-- A portal link, and the session it opens, last no longer than the key that made the link:
-- revoked (or expired, or past its rotation), the link no longer opens and the session ends.
ALTER TABLE portal_links ADD COLUMN credential_id BLOB REFERENCES credentials (id);
ALTER TABLE sessions ADD COLUMN opened_by_credential BLOB REFERENCES credentials (id);

-- An organization's policy for new credentials: a longest lifetime in days, and whether an
-- expiry is required. Checked inside the transaction that inserts a credential.
ALTER TABLE organizations ADD COLUMN max_lifetime_days BIGINT
    CHECK (max_lifetime_days IS NULL OR max_lifetime_days BETWEEN 1 AND 3650);
ALTER TABLE organizations ADD COLUMN require_expiry BIGINT NOT NULL DEFAULT 0
    CHECK (require_expiry IN (0, 1));

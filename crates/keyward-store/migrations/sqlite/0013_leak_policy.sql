-- What happens to a key of the organization that a scanning partner (GitHub) reports as
-- exposed: revoked at once (the default), or only flagged for its owners to replace.
ALTER TABLE organizations ADD COLUMN leak_action TEXT NOT NULL DEFAULT 'revoke'
    CHECK (leak_action IN ('revoke', 'flag'));

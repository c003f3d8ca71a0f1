-- Limits shared by every credential of an organization that carries one external id: a rate
-- limit (its state in `rate_buckets`, as `identity:<id>`) and credits (a row of
-- `credit_balances` whose owner is this row's id).
CREATE TABLE identity_limits (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    external_id TEXT NOT NULL,
    rate_limit_requests BIGINT,
    rate_limit_per_seconds BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (organization_id, external_id)
);
-- A balance belongs to a credential or to an identity's limits: `owner_id` is the id of
-- either.
ALTER TABLE credit_balances DROP CONSTRAINT credit_balances_credential_id_fkey;
ALTER TABLE credit_balances RENAME COLUMN credential_id TO owner_id;

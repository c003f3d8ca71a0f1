-- Limits shared by every credential of an organization that carries one external id: a rate
-- limit (its state in `rate_buckets`, as `identity:<id>`) and credits (a row of
-- `credit_balances` whose `credential_id` is this row's id). The columns are named apart from
-- the credentials' own, since every credential read joins them.
CREATE TABLE identity_limits (
    identity_id UUID PRIMARY KEY,
    identity_organization_id UUID NOT NULL REFERENCES organizations (id),
    identity_external_id TEXT NOT NULL,
    identity_rate_limit_requests BIGINT,
    identity_rate_limit_per_seconds BIGINT,
    identity_created_at BIGINT NOT NULL,
    identity_updated_at BIGINT NOT NULL,
    UNIQUE (identity_organization_id, identity_external_id)
);
-- A balance belongs to a credential or to an identity's limits: `credential_id` is the id of
-- either. (Only the constraint goes: nodes of the previous version keep reading the table.)
ALTER TABLE credit_balances DROP CONSTRAINT credit_balances_credential_id_fkey;

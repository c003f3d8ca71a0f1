-- Limits shared by every credential of an organization that carries one external id: a rate
-- limit (its state in `rate_buckets`, as `identity:<id>`) and credits (a row of
-- `credit_balances` whose `credential_id` is this row's id). The columns are named apart from
-- the credentials' own, since every credential read joins them.
CREATE TABLE identity_limits (
    identity_id BLOB PRIMARY KEY,
    identity_organization_id BLOB NOT NULL REFERENCES organizations (id),
    identity_external_id TEXT NOT NULL,
    identity_rate_limit_requests INTEGER,
    identity_rate_limit_per_seconds INTEGER,
    identity_created_at INTEGER NOT NULL,
    identity_updated_at INTEGER NOT NULL,
    UNIQUE (identity_organization_id, identity_external_id)
);
-- A balance belongs to a credential or to an identity's limits: `credential_id` is the id of
-- either. SQLite cannot drop a foreign key in place: the table is made again, its rows kept.
CREATE TABLE credit_balances_of_any (
    credential_id BLOB PRIMARY KEY,
    remaining INTEGER CHECK (remaining >= 0),
    refill_amount INTEGER,
    refill_every TEXT,
    refill_on_day INTEGER,
    period INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    base INTEGER NOT NULL,
    low_sent_period INTEGER,
    exhausted_sent_period INTEGER
);
INSERT INTO credit_balances_of_any (credential_id, remaining, refill_amount, refill_every,
    refill_on_day, period, generation, base, low_sent_period, exhausted_sent_period)
    SELECT credential_id, remaining, refill_amount, refill_every, refill_on_day, period,
        generation, base, low_sent_period, exhausted_sent_period FROM credit_balances;
DROP TABLE credit_balances;
ALTER TABLE credit_balances_of_any RENAME TO credit_balances;

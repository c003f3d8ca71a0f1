-- Limits shared by every credential of an organization that carries one external id: a rate
-- limit (its state in `rate_buckets`, as `identity:<id>`) and credits (a row of
-- `credit_balances` whose owner is this row's id).
CREATE TABLE identity_limits (
    id BLOB PRIMARY KEY,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    external_id TEXT NOT NULL,
    rate_limit_requests INTEGER,
    rate_limit_per_seconds INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (organization_id, external_id)
);
-- A balance belongs to a credential or to an identity's limits: `owner_id` is the id of
-- either. SQLite cannot drop a foreign key in place: the table is made again, its rows kept.
CREATE TABLE credit_balances_by_owner (
    owner_id BLOB PRIMARY KEY,
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
INSERT INTO credit_balances_by_owner (owner_id, remaining, refill_amount, refill_every,
    refill_on_day, period, generation, base, low_sent_period, exhausted_sent_period)
    SELECT credential_id, remaining, refill_amount, refill_every, refill_on_day, period,
        generation, base, low_sent_period, exhausted_sent_period FROM credit_balances;
DROP TABLE credit_balances;
ALTER TABLE credit_balances_by_owner RENAME TO credit_balances;

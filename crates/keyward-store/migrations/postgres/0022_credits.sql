-- Credits: how many calls a credential may still make, spent by nodes from leases they take
-- here (never a write per request), and refilled to `refill_amount` at each boundary.
CREATE TABLE credit_balances (
    credential_id UUID PRIMARY KEY REFERENCES credentials (id),
    -- What no node holds in a lease yet; NULL once the credits were removed (the row stays,
    -- so that its generation only ever grows).
    remaining BIGINT CHECK (remaining >= 0),
    refill_amount BIGINT,
    -- `day` or `month`.
    refill_every TEXT,
    refill_on_day BIGINT,
    -- The start of the refill period `remaining` belongs to (Unix seconds; 0 without refill).
    period BIGINT NOT NULL,
    -- Changed whenever the credits are set: what leases taken before hold no longer counts.
    generation BIGINT NOT NULL,
    -- The last amount set or refilled; `credits_low` is sent at a tenth of it.
    base BIGINT NOT NULL,
    -- The period whose `credits_low` and `credits_exhausted` were sent, once each.
    low_sent_period BIGINT,
    exhausted_sent_period BIGINT
);

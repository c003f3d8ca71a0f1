-- Rate limits shared by every node: each bucket's GCRA state (its theoretical arrival time,
-- in Unix nanoseconds), which nodes take requests from in leases (never a write per request).
-- `bucket` names what is limited, for example `credential:<id>`.
CREATE TABLE rate_buckets (
    bucket TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);

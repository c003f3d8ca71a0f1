-- Rate limits shared by every node: each bucket's GCRA state (its theoretical arrival time,
-- in Unix nanoseconds), which nodes take requests from in leases (never a write per request).
-- `bucket` names what is limited, for example `credential:<id>`; `requests` and
-- `per_seconds` are the limit the state was last written under (a state left by a stricter
-- limit is brought within the new one's window once).
CREATE TABLE rate_buckets (
    bucket TEXT PRIMARY KEY,
    tat BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    per_seconds BIGINT NOT NULL
);

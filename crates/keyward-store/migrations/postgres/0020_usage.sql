-- Usage: how many verifications each credential had, by hour and outcome, added up from
-- every node's in-memory counts (never a write per request).
CREATE TABLE usage_hours (
    credential_id UUID NOT NULL REFERENCES credentials (id),
    organization_id UUID NOT NULL,
    -- The hour's first second (Unix seconds, UTC).
    hour BIGINT NOT NULL,
    -- `allowed`, or a refusal: `revoked`, `expired`, `rate_limited`, `insufficient_scope`,
    -- `ip_not_allowed`, `organization_suspended`, …
    outcome TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (credential_id, hour, outcome)
);
CREATE INDEX usage_hours_by_organization ON usage_hours (organization_id, hour);
CREATE INDEX usage_hours_by_hour ON usage_hours (hour);

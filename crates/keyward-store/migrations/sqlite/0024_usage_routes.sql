-- Usage by route: forward authentication counts a verification under the name of the route
-- rule it matched (`''` when the rule has none, or for any other verification). SQLite
-- cannot change a primary key in place: the table is made again, its counts kept.
CREATE TABLE usage_hours_by_route (
    credential_id BLOB NOT NULL REFERENCES credentials (id),
    organization_id BLOB NOT NULL,
    -- The hour's first second (Unix seconds, UTC).
    hour INTEGER NOT NULL,
    -- `allowed`, or a refusal: `revoked`, `expired`, `rate_limited`, `insufficient_scope`,
    -- `ip_not_allowed`, `forbidden`, `organization_suspended`, …
    outcome TEXT NOT NULL,
    route TEXT NOT NULL DEFAULT '',
    count INTEGER NOT NULL,
    PRIMARY KEY (credential_id, hour, outcome, route)
);
INSERT INTO usage_hours_by_route (credential_id, organization_id, hour, outcome, route, count)
    SELECT credential_id, organization_id, hour, outcome, '', count FROM usage_hours;
DROP TABLE usage_hours;
ALTER TABLE usage_hours_by_route RENAME TO usage_hours;
CREATE INDEX usage_hours_by_organization ON usage_hours (organization_id, hour);
CREATE INDEX usage_hours_by_hour ON usage_hours (hour);

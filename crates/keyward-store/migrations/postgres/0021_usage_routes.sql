-- Usage by route: forward authentication counts a verification under the name of the route
-- rule it matched (`''` when the rule has none, or for any other verification).
ALTER TABLE usage_hours ADD COLUMN route TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_hours DROP CONSTRAINT usage_hours_pkey;
ALTER TABLE usage_hours ADD PRIMARY KEY (credential_id, hour, outcome, route);

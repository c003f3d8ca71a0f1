-- Optional per-credential rate limits: `rate_limit_requests` per `rate_limit_per_seconds`.
ALTER TABLE credentials ADD COLUMN rate_limit_requests INTEGER
    CHECK (rate_limit_requests IS NULL OR rate_limit_requests > 0);
ALTER TABLE credentials ADD COLUMN rate_limit_per_seconds INTEGER
    CHECK (rate_limit_per_seconds IS NULL OR rate_limit_per_seconds > 0);

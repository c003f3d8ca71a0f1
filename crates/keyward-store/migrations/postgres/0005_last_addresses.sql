-- The last few client addresses each credential was used from, with the time of the last use
-- from each; written with the last-use batches, at most five kept per credential.
CREATE TABLE credential_addresses (
    credential_id UUID NOT NULL REFERENCES credentials (id),
    ip TEXT NOT NULL,
    last_used_at BIGINT NOT NULL,
    PRIMARY KEY (credential_id, ip)
);

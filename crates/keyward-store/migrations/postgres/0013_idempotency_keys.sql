-- Idempotency-Key: the first answer to a creating request, kept 24 hours so that a retry
-- with the same key and body gets it again instead of creating a second resource. `caller`
-- is who sent it (a credential id); `fingerprint` the SHA-256 of its method, path and body.
-- While the first request runs, `locked_until` is set and `status` is NULL. An answer that
-- showed a secret keeps only what it created (`location`, and `secret` naming what was
-- shown), never the body.
CREATE TABLE idempotency_keys (
    caller TEXT NOT NULL,
    idempotency_key TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    fingerprint BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    locked_until BIGINT,
    status BIGINT,
    location TEXT,
    body TEXT,
    secret TEXT,
    PRIMARY KEY (caller, idempotency_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

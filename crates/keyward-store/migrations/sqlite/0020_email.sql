-- Email: an outbox every node sends from, and password resets.

-- A message to send. It holds no secret: a link's one-time token is derived, when the
-- message is sent, from the installation's key and the message's id, and only its SHA-256
-- is kept (in password_resets, for one).
CREATE TABLE email_outbox (
    id BLOB PRIMARY KEY NOT NULL,
    recipient TEXT NOT NULL,
    -- Which message: `password_reset`, `credential_expiring`, `credential_leaked`, …
    template TEXT NOT NULL,
    -- What the template fills in (JSON), never a secret.
    params TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    -- A node sending it holds it until then; after that another node may.
    locked_until INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at INTEGER,
    -- Given up after too many failures.
    failed_at INTEGER,
    last_error TEXT
);
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;

-- A password reset link: the SHA-256 of its token, for an hour, used once.
CREATE TABLE password_resets (
    token_sha256 BLOB PRIMARY KEY NOT NULL CHECK (length(token_sha256) = 32),
    user_id BLOB NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX password_resets_by_user ON password_resets (user_id, created_at);

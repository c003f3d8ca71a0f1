-- Dashboard sessions and the failed-login throttle. Kept in the database so that any node
-- can serve any person.

CREATE TABLE sessions (
    -- SHA-256 of the session cookie's value; the value itself is never stored.
    token_sha256 BLOB PRIMARY KEY NOT NULL CHECK (length(token_sha256) = 32),
    user_id BLOB NOT NULL REFERENCES users (id),
    -- The organization the person is working in; NULL when they belong to none.
    organization_id BLOB REFERENCES organizations (id),
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE login_failures (
    email TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    failures INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL,
    PRIMARY KEY (email, client_ip)
);

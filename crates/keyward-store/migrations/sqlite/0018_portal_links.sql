-- Portal links: a platform opens the dashboard for one of its people with a one-time code,
-- valid for a minute, of which only the SHA-256 is kept. The session it opens is confined
-- to one organization and some of its pages.

CREATE TABLE portal_links (
    code_sha256 BLOB PRIMARY KEY NOT NULL CHECK (length(code_sha256) = 32),
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    user_id BLOB NOT NULL REFERENCES users (id),
    -- The pages the session may show, space-separated (`api_keys tokens`).
    pages TEXT NOT NULL CHECK (length(pages) > 0),
    return_url TEXT NOT NULL,
    session_seconds INTEGER NOT NULL CHECK (session_seconds > 0),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    redeemed_at INTEGER
);
CREATE INDEX portal_links_by_expiry ON portal_links (expires_at);

-- A session opened by a portal link: its pages and where "Back" goes. NULL for the others.
ALTER TABLE sessions ADD COLUMN portal_pages TEXT;
ALTER TABLE sessions ADD COLUMN return_url TEXT;

-- The platform's id for a person names one person: portal links and single sign-on find
-- people by it. Where two accounts were given the same id before, the older keeps it.
UPDATE users SET external_id = NULL
WHERE external_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM users AS older
    WHERE older.external_id = users.external_id
      AND (older.created_at < users.created_at
           OR (older.created_at = users.created_at AND older.id < users.id))
);
CREATE UNIQUE INDEX users_by_external_id ON users (external_id) WHERE external_id IS NOT NULL;

-- Invitations: adding a member by email asks the person first. They join when they accept,
-- through the emailed link or, without email, when they next sign in with that address.

CREATE TABLE invitations (
    id BLOB PRIMARY KEY NOT NULL,
    organization_id BLOB NOT NULL REFERENCES organizations (id),
    -- Lowercase, as every email Keyward keeps.
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    -- Who invited: a person or a credential (or neither, for Keyward itself). Acceptance
    -- checks they still may.
    invited_by_user BLOB REFERENCES users (id),
    invited_by_credential BLOB REFERENCES credentials (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    -- The SHA-256 of the emailed link's token (derived, never kept); a resend replaces it.
    -- NULL when no email was sent.
    token_sha256 BLOB UNIQUE CHECK (token_sha256 IS NULL OR length(token_sha256) = 32),
    -- When its link was last emailed (resends are throttled by it).
    last_sent_at INTEGER,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'accepted', 'declined', 'cancelled')),
    closed_at INTEGER,
    -- The person who accepted or declined.
    closed_by_user BLOB REFERENCES users (id)
);
-- One open invitation per address and organization.
CREATE UNIQUE INDEX invitations_open ON invitations (organization_id, email)
    WHERE status = 'pending';
CREATE INDEX invitations_by_email ON invitations (email, created_at);
-- For the daily cap on what one organization sends.
CREATE INDEX invitations_by_organization ON invitations (organization_id, created_at);

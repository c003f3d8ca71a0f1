-- Single sign-on with the platform's OpenID provider.

-- A membership the provider's organization claim gave: it goes when the claim no longer
-- names the organization. Memberships made any other way are left alone.
ALTER TABLE memberships ADD COLUMN from_provider INTEGER NOT NULL DEFAULT 0
    CHECK (from_provider IN (0, 1));

-- A session begun at the provider, which log-out ends there too.
ALTER TABLE sessions ADD COLUMN single_sign_on INTEGER NOT NULL DEFAULT 0
    CHECK (single_sign_on IN (0, 1));

-- The address ranges a credential may be used from, space-separated in canonical form
-- (`10.0.0.0/8 2001:db8::/32`); NULL for any address.
ALTER TABLE credentials ADD COLUMN allowed_cidrs TEXT
    CHECK (allowed_cidrs IS NULL OR length(allowed_cidrs) BETWEEN 1 AND 4096);

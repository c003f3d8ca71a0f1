-- Rotation with overlap: the old credential keeps working until `rotation_ends_at`, then is
-- refused exactly as if revoked; `rotated_to` and `rotated_from` link the two.
ALTER TABLE credentials ADD COLUMN rotation_ends_at INTEGER;
ALTER TABLE credentials ADD COLUMN rotated_to BLOB REFERENCES credentials (id);
ALTER TABLE credentials ADD COLUMN rotated_from BLOB REFERENCES credentials (id);

-- Set once, never moved: a rotation's end is as permanent as a revocation.
CREATE TRIGGER credentials_rotation_is_permanent
BEFORE UPDATE OF rotation_ends_at, rotated_to ON credentials
WHEN OLD.rotation_ends_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a rotation cannot be changed');
END;

-- Rotation with overlap: the old credential keeps working until `rotation_ends_at`, then is
-- refused exactly as if revoked; `rotated_to` and `rotated_from` link the two.
ALTER TABLE credentials ADD COLUMN rotation_ends_at BIGINT;
ALTER TABLE credentials ADD COLUMN rotated_to UUID REFERENCES credentials (id);
ALTER TABLE credentials ADD COLUMN rotated_from UUID REFERENCES credentials (id);

-- Set once, never moved: a rotation's end is as permanent as a revocation.
CREATE FUNCTION credentials_rotation_is_permanent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.rotation_ends_at IS NOT NULL AND (
        NEW.rotation_ends_at IS DISTINCT FROM OLD.rotation_ends_at
        OR NEW.rotated_to IS DISTINCT FROM OLD.rotated_to
    ) THEN
        RAISE EXCEPTION 'a rotation cannot be changed';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER credentials_rotation_is_permanent BEFORE UPDATE ON credentials
FOR EACH ROW EXECUTE FUNCTION credentials_rotation_is_permanent();

-- A project token can be stored only for a live project of its own organization. The trigger
-- share-locks the project row inside the inserting transaction: a deletion that holds the row
-- (FOR UPDATE) makes the insert wait and then fail, and a deletion that comes second waits for
-- the insert to commit and revokes the new token with the others.
CREATE FUNCTION keyward_credential_needs_live_project() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.project_id IS NOT NULL THEN
        PERFORM 1 FROM projects
        WHERE id = NEW.project_id AND organization_id = NEW.organization_id
          AND deleted_at IS NULL
        FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'keyward: the project is deleted or not in this organization'
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER credentials_need_a_live_project
BEFORE INSERT ON credentials
FOR EACH ROW EXECUTE FUNCTION keyward_credential_needs_live_project();

-- Tokens that an earlier version let outlive their project are revoked as of its deletion.
UPDATE credentials
SET revoked_at = projects.deleted_at
FROM projects
WHERE projects.id = credentials.project_id
  AND projects.deleted_at IS NOT NULL
  AND credentials.revoked_at IS NULL;

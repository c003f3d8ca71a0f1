-- A project token can be stored only for a live project of its own organization. The database
-- checks it inside the inserting transaction (SQLite runs one writer at a time), so no token
-- can slip in while its project is being deleted.
CREATE TRIGGER credentials_need_a_live_project
BEFORE INSERT ON credentials
WHEN NEW.project_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM projects
    WHERE id = NEW.project_id AND organization_id = NEW.organization_id AND deleted_at IS NULL
)
BEGIN
    SELECT RAISE(ABORT, 'keyward: the project is deleted or not in this organization');
END;

-- Tokens that an earlier version let outlive their project are revoked as of its deletion.
UPDATE credentials
SET revoked_at = (SELECT deleted_at FROM projects WHERE projects.id = credentials.project_id)
WHERE revoked_at IS NULL
  AND project_id IN (SELECT id FROM projects WHERE deleted_at IS NOT NULL);

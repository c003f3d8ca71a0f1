-- The audit log: one row per change, written in the change's own transaction. Never a secret:
-- an actor is named by id and email or key hint, changes are the fields a person can see.
CREATE TABLE audit_events (
    id BLOB PRIMARY KEY NOT NULL,
    organization_id BLOB,
    at INTEGER NOT NULL,
    action TEXT NOT NULL,
    actor_type TEXT NOT NULL CHECK (actor_type IN ('user', 'credential', 'system')),
    actor_id TEXT,
    actor_label TEXT,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    changes TEXT NOT NULL,
    client_ip TEXT,
    user_agent TEXT,
    request_id TEXT
);
CREATE INDEX audit_events_by_organization ON audit_events (organization_id, id);
CREATE INDEX audit_events_by_time ON audit_events (at);

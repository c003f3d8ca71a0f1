-- The key-event log: every change that verification must follow (a credential revoked,
-- rotated, changed, its organization suspended or resumed, its identity's limits changed),
-- numbered in the order the changes committed, for services that keep their own caches of
-- verified keys (`GET /v1/keys/events`). A transaction takes its ids just before it commits,
-- holding a transaction-level advisory lock, so ids increase in commit order. Pruned after a
-- day; `key_event_horizon` keeps the last id pruned, so that a reader behind it is told it
-- missed events.
CREATE TABLE key_events (
    id BIGSERIAL PRIMARY KEY,
    organization_id UUID NOT NULL,
    credential_id UUID NOT NULL,
    credential_kind TEXT NOT NULL,
    change TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX key_events_by_organization ON key_events (organization_id, id);
CREATE TABLE key_event_horizon (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through BIGINT NOT NULL
);
INSERT INTO key_event_horizon (id, pruned_through) VALUES (1, 0);

-- Webhooks. Endpoints an organization registered (their secrets are derived from the
-- installation's signing key, never stored: `secret_check` only tells a node whose key
-- differs); messages written in the same transaction as the change they report (the outbox);
-- one delivery per message and endpoint, claimed by one node at a time; every attempt.
CREATE TABLE webhook_endpoints (
    id UUID PRIMARY KEY NOT NULL,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    url TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description TEXT NOT NULL DEFAULT '',
    events TEXT NOT NULL CHECK (length(events) > 0),
    secret_check TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_by_organization ON webhook_endpoints (organization_id);

CREATE TABLE webhook_messages (
    id UUID PRIMARY KEY NOT NULL,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_messages_by_time ON webhook_messages (created_at);

CREATE TABLE webhook_deliveries (
    message_id UUID NOT NULL REFERENCES webhook_messages (id),
    endpoint_id UUID NOT NULL REFERENCES webhook_endpoints (id),
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    locked_until BIGINT,
    last_status BIGINT,
    last_error TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, message_id);

CREATE TABLE webhook_attempts (
    message_id UUID NOT NULL,
    endpoint_id UUID NOT NULL,
    attempted_at BIGINT NOT NULL,
    status BIGINT,
    latency_ms BIGINT NOT NULL,
    error TEXT,
    FOREIGN KEY (message_id, endpoint_id) REFERENCES webhook_deliveries (message_id, endpoint_id)
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (endpoint_id, message_id, attempted_at);

-- Expiry warnings already sent, so that each is sent once whatever the nodes and restarts.
CREATE TABLE credential_notices (
    credential_id UUID NOT NULL REFERENCES credentials (id),
    notice TEXT NOT NULL CHECK (notice IN ('expiring_7d', 'expiring_1d', 'expired')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (credential_id, notice)
);

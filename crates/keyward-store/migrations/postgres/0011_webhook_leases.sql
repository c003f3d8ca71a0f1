-- The deliveries each endpoint has in flight (claimed, lease not over), counted at every
-- claim so that one slow receiver holds a few deliveries and nobody else's.
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (endpoint_id, locked_until)
    WHERE state = 'pending';

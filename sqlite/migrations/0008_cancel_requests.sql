-- Cancellation (issue 10): when a deployment's org asked for it to stop
-- (integer microseconds; NULL: never). A node running the deployment polls
-- it by primary key; Publish refuses a deployment that has it.
ALTER TABLE deployments ADD COLUMN cancel_requested_at INTEGER;

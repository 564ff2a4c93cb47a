-- Leases (issue 9, dead nodes): the node that runs a deployment holds a
-- lease with an epoch; every write it makes is guarded by that epoch, and a
-- reaper on any node takes back a lease that expired. Expiry times are on
-- the database's clock (integer microseconds, as every time here), never a
-- node's.
ALTER TABLE deployments ADD COLUMN lease_node TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN lease_expires_at INTEGER;
-- How many times a reaper took the deployment back from a dead node; past
-- the limit it is dead-lettered rather than dispatched again.
ALTER TABLE deployments ADD COLUMN reclaims INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deployments_lease ON deployments(lease_expires_at) WHERE lease_node != '';

-- One row per node, stamped by the database at each heartbeat.
CREATE TABLE nodes (
  id           TEXT PRIMARY KEY,
  started_at   INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL
);

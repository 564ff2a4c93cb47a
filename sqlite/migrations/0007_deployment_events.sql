-- Deployment events (issue 10, live logs): what GET /deployments/{id}/events
-- replays and follows. seq numbers one deployment's events from 1 without
-- gaps; deployments.event_seq is the last one used, read and moved on in the
-- transaction that writes the events. Log lines are stored here as well as
-- in deployment_logs, which the status endpoint keeps reading. Deployments
-- accepted before this migration have no events: the API synthesises their
-- replay from their stored logs and final state.
ALTER TABLE deployments ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;
CREATE TABLE deployment_events (
  deployment_id TEXT NOT NULL,
  seq           INTEGER NOT NULL,
  type          TEXT NOT NULL,
  data          TEXT NOT NULL,
  PRIMARY KEY (deployment_id, seq)
) WITHOUT ROWID;

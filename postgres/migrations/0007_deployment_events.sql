-- Deployment events (issue 10, live logs): what GET /deployments/{id}/events
-- replays and follows. seq numbers one deployment's events from 1 without
-- gaps; deployments.event_seq is the last one used, read and moved on, under
-- the deployment row's lock, in the transaction that writes the events: a
-- global sequence would not do, since two transactions can commit its values
-- out of order, and a follower that read 105 would never see 104. Log lines
-- are stored here as well as in deployment_logs, which the status endpoint
-- keeps reading. Deployments accepted before this migration have no events:
-- the API synthesises their replay from their stored logs and final state.
ALTER TABLE deployments ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0;
CREATE TABLE deployment_events (
  deployment_id TEXT COLLATE "C" NOT NULL,
  seq           BIGINT NOT NULL,
  type          TEXT NOT NULL,
  data          TEXT NOT NULL,
  PRIMARY KEY (deployment_id, seq)
);

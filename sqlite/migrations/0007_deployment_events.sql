-- Deployment events (issue 10, live logs): what GET /deployments/{id}/events
-- replays and follows. seq numbers one deployment's events from 1 without
-- gaps: the transaction that writes events numbers them after the
-- deployment's highest seq, read under the one writer (no counter column on
-- deployments: bumping it would rewrite that whole row on every log flush).
-- Log lines are stored here as well as in deployment_logs, which the status
-- endpoint keeps reading. Deployments accepted before this migration have no
-- events: the API synthesises their replay from their stored logs and final
-- state.
CREATE TABLE deployment_events (
  deployment_id TEXT NOT NULL,
  seq           INTEGER NOT NULL,
  type          TEXT NOT NULL,
  data          TEXT NOT NULL,
  PRIMARY KEY (deployment_id, seq)
) WITHOUT ROWID;

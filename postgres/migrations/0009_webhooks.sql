-- Signed webhooks (issue 10). An endpoint belongs to a project and goes with
-- it; a delivery is one message to one endpoint, written in the same
-- transaction as the change it announces (the outbox), and keeps its attempts.
-- events is a comma-separated list, '' for every event. dedupe makes a
-- final-status event one message per endpoint however often the status is
-- written. Times are integer microseconds, as everywhere.
CREATE TABLE webhooks (
  id              TEXT COLLATE "C" PRIMARY KEY,
  project_id      TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  url             TEXT NOT NULL,
  events          TEXT NOT NULL DEFAULT '',
  secret          TEXT NOT NULL,
  created_at      BIGINT NOT NULL,
  disabled_at     BIGINT,
  disabled_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhooks_project ON webhooks(project_id, created_at);

CREATE TABLE webhook_deliveries (
  seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id              TEXT COLLATE "C" NOT NULL UNIQUE,
  webhook_id      TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
  event           TEXT NOT NULL,
  deployment_id   TEXT NOT NULL,
  dedupe          TEXT NOT NULL,
  payload         TEXT NOT NULL,
  status          TEXT NOT NULL DEFAULT 'pending',
  attempts        BIGINT NOT NULL DEFAULT 0,
  response_code   BIGINT NOT NULL DEFAULT 0,
  last_error      TEXT NOT NULL DEFAULT '',
  durations_ms    TEXT NOT NULL DEFAULT '[]',
  created_at      BIGINT NOT NULL,
  last_attempt_at BIGINT,
  next_attempt_at BIGINT,
  UNIQUE (webhook_id, dedupe)
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, seq);

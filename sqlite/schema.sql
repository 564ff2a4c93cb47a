-- The service's own tables. River's tables (river_job, ...) live in the same
-- file and are created by River's migrator.

CREATE TABLE IF NOT EXISTS tokens (
  hash       TEXT PRIMARY KEY,
  org_id     TEXT NOT NULL,
  user_id    TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS projects (
  id         TEXT PRIMARY KEY,
  org_id     TEXT NOT NULL,
  name       TEXT NOT NULL,
  -- host is the lower-cased id when it is a valid host-name label: the
  -- project's production alias {host}.{sites domain}. NULL otherwise.
  host       TEXT UNIQUE,
  created_at INTEGER NOT NULL,
  current_deployment TEXT,
  -- seq of the newest deployment the project ever published: an older
  -- deployment that finishes later must not replace a newer one. A rollback
  -- moves current_deployment back but leaves this mark where it is.
  current_seq INTEGER
);
CREATE INDEX IF NOT EXISTS projects_org ON projects(org_id, id);

CREATE TABLE IF NOT EXISTS quotas (
  org_id        TEXT PRIMARY KEY,
  monthly_limit INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS quota_usage (
  org_id TEXT NOT NULL,
  month  TEXT NOT NULL,
  used   INTEGER NOT NULL,
  PRIMARY KEY (org_id, month)
);

CREATE TABLE IF NOT EXISTS deployments (
  -- seq orders deployments by acceptance; it is SQLite's rowid.
  seq           INTEGER PRIMARY KEY AUTOINCREMENT,
  id            TEXT NOT NULL UNIQUE,
  project_id    TEXT NOT NULL REFERENCES projects(id),
  org_id        TEXT NOT NULL,
  user_id       TEXT NOT NULL,
  custom_domain TEXT NOT NULL DEFAULT '',
  status        TEXT NOT NULL,
  current_step  TEXT NOT NULL DEFAULT '',
  progress      INTEGER NOT NULL DEFAULT 0,
  steps         TEXT NOT NULL,
  error         TEXT NOT NULL DEFAULT '',
  url           TEXT NOT NULL DEFAULT '',
  input         TEXT NOT NULL,
  manifest      TEXT NOT NULL DEFAULT '',
  attempt       INTEGER NOT NULL DEFAULT 0,
  job_id        INTEGER,
  created_at    INTEGER NOT NULL,
  started_at    INTEGER,
  finished_at   INTEGER,
  quota_month   TEXT NOT NULL DEFAULT '',
  quota_refunded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS deployments_project ON deployments(project_id, seq);
CREATE INDEX IF NOT EXISTS deployments_status ON deployments(status) WHERE status IN ('queued', 'in_progress');

CREATE TABLE IF NOT EXISTS deployment_logs (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  deployment_id TEXT NOT NULL,
  ts            INTEGER NOT NULL,
  step          TEXT NOT NULL,
  level         TEXT NOT NULL,
  message       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deployment_logs_deployment ON deployment_logs(deployment_id, id);

CREATE TABLE IF NOT EXISTS domains (
  domain     TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id),
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS domains_project ON domains(project_id);

-- The service's tables on PostgreSQL: the same columns as SQLite's
-- schema.sql plus its migrations, so that one set of scanners and most query
-- texts serve both (internal/storesql). Times are integer microseconds since
-- the epoch, steps and inputs JSON text, for that reason. River's tables
-- (river_job, ...) live in the same database and are created by River's
-- migrator. Ids, host names and domains compare as bytes (COLLATE "C"):
-- ListProjects promises byte order, whatever the database's locale.

CREATE TABLE tokens (
  hash       TEXT PRIMARY KEY,
  org_id     TEXT NOT NULL,
  user_id    TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE TABLE projects (
  id           TEXT COLLATE "C" PRIMARY KEY,
  org_id       TEXT COLLATE "C" NOT NULL,
  name         TEXT NOT NULL,
  -- host is the lower-cased id when it is a valid host-name label: the
  -- project's production alias. NULL otherwise.
  host         TEXT COLLATE "C" UNIQUE,
  created_at   BIGINT NOT NULL,
  current_deployment TEXT COLLATE "C",
  -- seq of the newest deployment the project ever published (newest wins;
  -- a rollback leaves it where it is).
  current_seq  BIGINT,
  domain_token TEXT
);
CREATE INDEX projects_org ON projects(org_id, id);

CREATE TABLE quotas (
  org_id        TEXT PRIMARY KEY,
  monthly_limit INTEGER NOT NULL
);

CREATE TABLE quota_usage (
  org_id TEXT NOT NULL,
  month  TEXT NOT NULL,
  used   INTEGER NOT NULL,
  PRIMARY KEY (org_id, month)
);

CREATE TABLE deployments (
  -- seq orders deployments by acceptance.
  seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id            TEXT COLLATE "C" NOT NULL UNIQUE,
  site_label    TEXT COLLATE "C" NOT NULL UNIQUE,
  project_id    TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
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
  job_id        BIGINT,
  created_at    BIGINT NOT NULL,
  started_at    BIGINT,
  finished_at   BIGINT,
  quota_month   TEXT NOT NULL DEFAULT '',
  quota_refunded BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX deployments_project ON deployments(project_id, seq);
CREATE INDEX deployments_status ON deployments(status) WHERE status IN ('queued', 'in_progress');

CREATE TABLE deployment_logs (
  id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  deployment_id TEXT COLLATE "C" NOT NULL,
  ts            BIGINT NOT NULL,
  step          TEXT NOT NULL,
  level         TEXT NOT NULL,
  message       TEXT NOT NULL
);
CREATE INDEX deployment_logs_deployment ON deployment_logs(deployment_id, id);

CREATE TABLE domains (
  domain      TEXT COLLATE "C" PRIMARY KEY,
  project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
  created_at  BIGINT NOT NULL,
  -- verified_at is NULL while the domain is pending.
  verified_at BIGINT,
  checked_at  BIGINT,
  check_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX domains_project ON domains(project_id);
CREATE INDEX domains_pending ON domains(checked_at) WHERE verified_at IS NULL;

-- Build environment per project (issue 10). value is the plain value, or
-- for a secret (secret = 1) the value sealed with AES-256-GCM under the
-- service's key (internal/secretbox): never the secret in clear. Times are
-- integer microseconds, as everywhere.
CREATE TABLE project_env (
  project_id TEXT NOT NULL REFERENCES projects(id),
  key        TEXT NOT NULL,
  value      TEXT NOT NULL,
  secret     INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, key)
);

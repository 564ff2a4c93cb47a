-- Build reuse (issue 13). build_key is the digest of everything a
-- deployment's build reads (its files, build plan, environment and sandbox
-- provider), '' for a deployment without a build or from before this
-- migration. A later deployment of the same project with the same key
-- publishes that build's output instead of building it again.
ALTER TABLE deployments ADD COLUMN build_key TEXT NOT NULL DEFAULT '';
-- The lookup walks one project's deployments of one key, newest first.
CREATE INDEX deployments_build_key ON deployments(project_id, build_key, seq) WHERE build_key != '';

-- Deployment targets and stable aliases (issue 11). target is 'production'
-- (publishing moves the project's production alias, as before) or 'preview'
-- (it never does). alias is a stable alias name, '' for none: the host label
-- {alias}--{project host} serves the newest published deployment with that
-- alias in the project. Deployments made before this migration were all
-- production deployments without an alias.
ALTER TABLE deployments ADD COLUMN target TEXT NOT NULL DEFAULT 'production';
ALTER TABLE deployments ADD COLUMN alias TEXT NOT NULL DEFAULT '';
-- An alias lookup and retention's "keep each alias' newest" walk one
-- project's deployments of one alias newest first.
CREATE INDEX deployments_alias ON deployments(project_id, alias, seq) WHERE alias != '';

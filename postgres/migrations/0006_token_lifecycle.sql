-- Token lifecycle (issue 10): a public id to list and revoke a token by
-- (random, never derived from the secret), when it was last used (written
-- at most about once a minute per token) and an optional expiry. Times are
-- integer microseconds, as everywhere. Tokens made before this migration get
-- a random id here (gen_random_uuid is built in since PostgreSQL 13).
ALTER TABLE tokens ADD COLUMN id TEXT COLLATE "C";
ALTER TABLE tokens ADD COLUMN last_used_at BIGINT;
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
UPDATE tokens SET id = 'tok_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 24) WHERE id IS NULL;
CREATE UNIQUE INDEX tokens_id ON tokens(id);
CREATE INDEX tokens_org ON tokens(org_id);

-- Token lifecycle (issue 10): a public id to list and revoke a token by
-- (random, never derived from the secret), when it was last used (written
-- at most about once a minute per token) and an optional expiry. Times are
-- integer microseconds, as everywhere. Tokens made before this migration get
-- a random id here.
ALTER TABLE tokens ADD COLUMN id TEXT;
ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;
ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
UPDATE tokens SET id = 'tok_' || lower(hex(randomblob(12))) WHERE id IS NULL;
CREATE UNIQUE INDEX tokens_id ON tokens(id);
CREATE INDEX tokens_org ON tokens(org_id);

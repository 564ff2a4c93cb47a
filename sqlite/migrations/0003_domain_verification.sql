-- Custom domains are served, and get certificates, only once their owner has
-- proved control of them with a DNS TXT record holding the project's
-- verification token. Domains attached before this migration start pending:
-- nothing proved they were their project's to attach.
ALTER TABLE projects ADD COLUMN domain_token TEXT;
-- verified_at is NULL while the domain is pending.
ALTER TABLE domains ADD COLUMN verified_at INTEGER;
ALTER TABLE domains ADD COLUMN checked_at INTEGER;
ALTER TABLE domains ADD COLUMN check_error TEXT NOT NULL DEFAULT '';
-- The background check picks pending domains least recently checked first.
CREATE INDEX IF NOT EXISTS domains_pending ON domains(checked_at) WHERE verified_at IS NULL;

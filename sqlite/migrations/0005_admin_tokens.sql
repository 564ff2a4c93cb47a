-- Admin tokens (issue 10): a token made with `token create --admin` also
-- opens the admin routes (/metrics, /admin/queue/), like ADMIN_TOKEN.
ALTER TABLE tokens ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;

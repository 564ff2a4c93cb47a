-- Admin tokens (issue 10): a token made with `token create --admin` also
-- opens the admin routes (/metrics, /admin/queue/), like ADMIN_TOKEN.
-- An integer, as on SQLite, so that both stores share the queries.
ALTER TABLE tokens ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;

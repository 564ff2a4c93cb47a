-- Each deployment's immutable URL gets a host label of its own instead of its
-- id, which is the key to its status and log (issue 8). Labels contain "--",
-- the deployment namespace of host names; the API chooses them for new
-- deployments. Existing ones get a fresh random label (72 bits from SQLite's
-- randomness, which the OS seeds), so their old {id}.{domain} URLs stop
-- working; their stored url moves to the new label.
ALTER TABLE deployments ADD COLUMN site_label TEXT NOT NULL DEFAULT '';
UPDATE deployments SET site_label = 'd--' || lower(hex(randomblob(9)));
UPDATE deployments SET url = replace(url, '//' || id || '.', '//' || site_label || '.') WHERE url != '';
CREATE UNIQUE INDEX deployments_site_label ON deployments(site_label);

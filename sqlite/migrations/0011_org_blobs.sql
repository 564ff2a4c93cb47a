-- Content-addressed uploads (issue 11): which org uploaded, or deployed,
-- which blob. The blobs themselves are shared in the artifact store; this
-- is what makes "which of these do you have?" an answer about the asking
-- org only. used_at is integer microseconds, as everywhere.
CREATE TABLE org_blobs (
	org_id  TEXT NOT NULL,
	digest  TEXT NOT NULL,
	size    INTEGER NOT NULL,
	used_at INTEGER NOT NULL,
	PRIMARY KEY (org_id, digest)
) WITHOUT ROWID;

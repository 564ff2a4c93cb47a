-- Content-addressed uploads (issue 11): which org uploaded, or deployed,
-- which blob. The blobs themselves are shared in the artifact store; this
-- is what makes "which of these do you have?" an answer about the asking
-- org only. used_at is integer microseconds, as everywhere.
CREATE TABLE org_blobs (
	org_id  TEXT COLLATE "C" NOT NULL,
	digest  TEXT COLLATE "C" NOT NULL,
	size    BIGINT NOT NULL,
	used_at BIGINT NOT NULL,
	PRIMARY KEY (org_id, digest)
);

-- TLS in cluster mode: certmagic's storage (certificates, their keys, the
-- ACME account, pending HTTP-01/TLS-ALPN-01 challenge tokens) and its named
-- locks, shared by every node (postgres/certstore.go). Keys are
-- slash-separated paths and compare as bytes (COLLATE "C"), so that the keys
-- under a prefix are one index range whatever the database's locale.

CREATE TABLE certmagic_data (
  key      TEXT COLLATE "C" PRIMARY KEY,
  value    BYTEA NOT NULL,
  modified TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per held lock. owner is a random token per acquisition (fencing:
-- only its holder renews or deletes it); expires_at is on the database's
-- clock, which every node shares, and is pushed forward while the holder
-- lives. A row past expires_at is stale and may be taken over.
CREATE TABLE certmagic_locks (
  name       TEXT COLLATE "C" PRIMARY KEY,
  owner      TEXT NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL
);

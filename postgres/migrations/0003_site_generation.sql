-- The site generation: one counter that every production flip (publish,
-- rollback, delete, domain verified/refuted/removed, retention) bumps in its
-- own transaction, next to its NOTIFY. A node that may have missed a
-- notification (its LISTEN connection dropped) sees the counter move and
-- drops its cached host lookups. One row, so a flip's bump also orders the
-- flips' notifications: the row lock is held until commit.
CREATE TABLE site_generation (
  id         BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
  generation BIGINT NOT NULL
);
INSERT INTO site_generation (id, generation) VALUES (true, 0);

-- Placeholder on branch i11-CX only: SQLite's migrations must be numbered
-- without a gap, and this branch was given 0008 while another branch holds
-- 0007. Delete this file when the branches are merged.
SELECT 1;

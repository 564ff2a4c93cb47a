-- Placeholder on branch i11-TG: SQLite numbers its migrations without gaps
-- (storesql.LoadMigrations), and this branch was given 0012 while others hold
-- 0007-0011. Drop this file when merging.
SELECT 1;

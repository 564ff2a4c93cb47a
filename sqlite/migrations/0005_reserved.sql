-- Placeholder: number 0005 is assigned to a branch developed in parallel
-- (issue 10). SQLite's migrations must be numbered without gaps, so this
-- no-op holds the place until that branch's 0005 is merged; then delete
-- this file (a database that ran it only has user_version 5, as it would).
SELECT 1;

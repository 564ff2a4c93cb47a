-- Placeholder (branch i11-SE): SQLite's migrations must be numbered without a gap, and
-- numbers 7-9 belong to other branches of issues 10-12. The lead drops this file
-- when merging and renumbers 0010_project_env.sql.
SELECT 1;

-- Placeholder so that SQLite's gap-free numbering reaches 0011 on branch i11-UP:
-- numbers 0007 to 0010 belong to parallel branches. DELETE THIS FILE AT MERGE.
SELECT 1;

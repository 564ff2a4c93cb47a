-- Placeholder: number 0002 is another change of issue 8, made on a parallel
-- branch. It keeps the numbers consecutive on this branch; when the branches
-- are merged, the real 0002 replaces this file.
SELECT 1;

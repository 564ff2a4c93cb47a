-- Reserved for the lease migration of issue 9 (branch c9-L), which is being
-- written at the same time: migration numbers may not have gaps, and this
-- branch's own migration is 0003. The lead drops this file when 0002 merges.
SELECT 1;

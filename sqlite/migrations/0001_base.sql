-- The first numbered migration changes nothing: schema.sql is the base. Later
-- files add to it (see migrate.go).
SELECT 1;

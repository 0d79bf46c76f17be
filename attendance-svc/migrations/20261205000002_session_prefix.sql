-- The subject prefix (the deployment) that recorded an open session: a replica sweeps the
-- forgotten clock-outs of its own deployment only, when several share one database (test runs,
-- staging beside production). Sessions from before this column are swept by any.
ALTER TABLE sessions ADD COLUMN prefix text;
CREATE INDEX sessions_open_by_prefix ON sessions (prefix, clock_in) WHERE clock_out IS NULL;

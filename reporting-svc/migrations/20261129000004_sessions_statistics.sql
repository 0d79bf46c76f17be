-- The planner guessed 34,000 (employee, date) groups for a month of 10,000 employees × 22 days
-- (really 220,000), found hashing them cheap and chose a bitmap scan, a hash aggregate spilling
-- to disk and a sort (380-395 ms) over the index-ordered streaming plan (234 ms). Telling it how
-- the three columns combine fixes the estimate.
CREATE STATISTICS IF NOT EXISTS sessions_days (ndistinct) ON org_id, employee_id, work_date
    FROM sessions;
ANALYZE sessions;

-- The monthly summary reads employee_id, work_date, clock_in and net_seconds of a month's
-- sessions. With the last two in the index, the read is an index-only scan already in
-- (employee, date) order, so both aggregations stream instead of hashing and sorting 220,000
-- rows: the summary's query for 10,000 employees × 22 days went from 400 ms to 195 ms.
DROP INDEX sessions_by_employee;
CREATE INDEX sessions_by_employee ON sessions (org_id, employee_id, work_date)
    INCLUDE (clock_in, net_seconds);

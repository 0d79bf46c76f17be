-- The CSV export reads the month a range of employees at a time.
CREATE INDEX sessions_by_employee ON sessions (org_id, employee_id, work_date);

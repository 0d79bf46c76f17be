-- Each employee's sessions of a month in one value, for the monthly summary: reading 220,000
-- session rows (10,000 employees × 22 days) cost Postgres about 150 ms of output per summary,
-- reading 10,000 of these about 10 ms. Kept by triggers on `sessions`, in the same transaction
-- as every change of it (the projection's upserts, a rebuild's TRUNCATE, a DELETE by hand), so it
-- never says other than `sessions` does.
--
-- `sessions` holds, per live session ordered by date and clock-in, 29 bytes: work_date (4, days
-- since 2000-01-01), clock_in (8, microseconds since 2000-01-01 UTC), clock_out (8, the same;
-- i64::MIN while open), net_seconds (8, 0 while open) and auto_closed (1): PostgreSQL's binary
-- send formats, read by reporting-svc/src/copy.rs.
CREATE TABLE employee_months (
    org_id      uuid NOT NULL,
    month       date NOT NULL,
    employee_id bigint NOT NULL,
    sessions    bytea NOT NULL,
    PRIMARY KEY (org_id, month, employee_id)
);

CREATE TYPE employee_month AS (org_id uuid, month date, employee_id bigint);

CREATE FUNCTION month_of(d date) RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN d - (extract(day FROM d)::int - 1);

CREATE FUNCTION employee_month_sessions(o uuid, m date, e bigint) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN coalesce((
        SELECT string_agg(
            date_send(s.work_date) || timestamptz_send(s.clock_in)
                || coalesce(timestamptz_send(s.clock_out), '\x8000000000000000'::bytea)
                || int8send(coalesce(s.net_seconds, 0)) || boolsend(s.auto_closed),
            ''::bytea ORDER BY s.work_date, s.clock_in)
        FROM sessions s
        WHERE s.org_id = o AND s.employee_id = e AND NOT s.deleted
            AND s.work_date BETWEEN m AND (m + interval '1 month' - interval '1 day')::date
    ), ''::bytea);

-- Writes the keys' values again from `sessions`. Each key's row is locked (created if missing)
-- first, in key order: a concurrent refresh of the same key waits there, and reads `sessions`
-- after the other transaction committed, so the last to commit wrote what both hold.
CREATE FUNCTION employee_months_refresh(keys employee_month[]) RETURNS void
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO employee_months (org_id, month, employee_id, sessions)
    SELECT k.org_id, k.month, k.employee_id, ''::bytea
    FROM unnest(keys) AS k ORDER BY 1, 2, 3
    ON CONFLICT (org_id, month, employee_id) DO UPDATE SET sessions = employee_months.sessions;
    UPDATE employee_months em
    SET sessions = employee_month_sessions(em.org_id, em.month, em.employee_id)
    FROM unnest(keys) AS k
    WHERE em.org_id = k.org_id AND em.month = k.month AND em.employee_id = k.employee_id;
END $$;

-- (The schema is fixed: the triggers also run in sessions of other search paths, an operator's
-- DELETE or TRUNCATE by hand.)
CREATE FUNCTION employee_months_changed() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM employee_months_refresh(ARRAY(
            SELECT DISTINCT ROW(org_id, month_of(work_date), employee_id)::employee_month
            FROM changed));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM employee_months_refresh(ARRAY(
            SELECT DISTINCT ROW(org_id, month_of(work_date), employee_id)::employee_month
            FROM (SELECT org_id, work_date, employee_id FROM changed
                  UNION ALL SELECT org_id, work_date, employee_id FROM gone) AS both_states));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM employee_months_refresh(ARRAY(
            SELECT DISTINCT ROW(org_id, month_of(work_date), employee_id)::employee_month
            FROM gone));
    ELSE
        TRUNCATE employee_months;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER employee_months_insert AFTER INSERT ON sessions
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION employee_months_changed();
CREATE TRIGGER employee_months_update AFTER UPDATE ON sessions
    REFERENCING OLD TABLE AS gone NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION employee_months_changed();
CREATE TRIGGER employee_months_delete AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION employee_months_changed();
CREATE TRIGGER employee_months_truncate AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION employee_months_changed();

INSERT INTO employee_months (org_id, month, employee_id, sessions)
SELECT org_id, month, employee_id, employee_month_sessions(org_id, month, employee_id)
FROM (SELECT DISTINCT org_id, month_of(work_date) AS month, employee_id
      FROM sessions WHERE NOT deleted) AS keys;

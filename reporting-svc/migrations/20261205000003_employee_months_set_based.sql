-- The refresh of `employee_months` computed each key's value by calling
-- `employee_month_sessions()` once per row, and Postgres runs a SQL function's query through its
-- function executor on every call: under a clock load about 250 µs of Postgres time per event, as
-- much as the punch's own write. The values of a batch's keys are now one query (a lateral
-- aggregate per key over the `sessions_by_employee` index, about 17 µs a key), planned once per
-- connection by PL/pgSQL. `employee_month_sessions()` stays the one-key definition that the tests
-- compare every value with.
--
-- As before: each key's row is locked (created if missing) first, in key order, and the values
-- are computed by the next statement, whose snapshot sees what a concurrent refresh of the same
-- keys committed.
CREATE OR REPLACE FUNCTION employee_months_refresh(keys employee_month[]) RETURNS void
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO employee_months (org_id, month, employee_id, sessions)
    SELECT k.org_id, k.month, k.employee_id, ''::bytea
    FROM unnest(keys) AS k ORDER BY 1, 2, 3
    ON CONFLICT (org_id, month, employee_id) DO UPDATE SET sessions = employee_months.sessions;
    UPDATE employee_months em
    SET sessions = coalesce(v.sessions, ''::bytea)
    FROM unnest(keys) AS k
    LEFT JOIN LATERAL (
        SELECT string_agg(
            date_send(s.work_date) || timestamptz_send(s.clock_in)
                || coalesce(timestamptz_send(s.clock_out), '\x8000000000000000'::bytea)
                || int8send(coalesce(s.net_seconds, 0)) || boolsend(s.auto_closed),
            ''::bytea ORDER BY s.work_date, s.clock_in) AS sessions
        FROM sessions s
        WHERE s.org_id = k.org_id AND s.employee_id = k.employee_id AND NOT s.deleted
            AND s.work_date BETWEEN k.month
                AND (k.month + interval '1 month' - interval '1 day')::date
    ) AS v ON true
    WHERE em.org_id = k.org_id AND em.month = k.month AND em.employee_id = k.employee_id;
END $$;

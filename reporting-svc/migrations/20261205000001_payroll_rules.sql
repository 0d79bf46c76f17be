-- Payroll rules (SPEC §8). Sessions carry the revision of the state they hold (a later event
-- wins, whatever the order of arrival), a tombstone when a correction deleted them, and whether
-- the system closed them. Closed months keep the summary they had at their close.
ALTER TABLE sessions
    ADD COLUMN revision bigint NOT NULL DEFAULT 1,
    ADD COLUMN deleted boolean NOT NULL DEFAULT false,
    ADD COLUMN auto_closed boolean NOT NULL DEFAULT false;
-- The summary reads clock_out and auto_closed as well now, of live sessions only.
DROP INDEX sessions_by_employee;
CREATE INDEX sessions_by_employee ON sessions (org_id, employee_id, work_date)
    INCLUDE (clock_in, clock_out, net_seconds, auto_closed) WHERE NOT deleted;

-- A closed month's summary, frozen once the projection held what attendance-svc held at the
-- close (`generation` counts closes; a reopen leaves `reopened` so a late close event of the
-- same generation cannot bring the snapshot back).
CREATE TABLE closed_months (
    org_id     uuid NOT NULL,
    month      date NOT NULL,
    generation bigint NOT NULL,
    reopened   boolean NOT NULL DEFAULT false,
    closed_at  timestamptz NOT NULL,
    json       bytea,
    csv        bytea,
    PRIMARY KEY (org_id, month)
);

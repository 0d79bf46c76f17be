-- reporting-svc owns this schema: a projection of attendance-svc's sessions and leave, fed by the
-- events on JetStream (durable consumer `reporting`). Every write is an idempotent upsert keyed by
-- the source's id, so replaying events (redelivery, a rebuild) changes nothing.

CREATE TABLE sessions (
    attendance_id bigint PRIMARY KEY,
    org_id        uuid NOT NULL,
    employee_id   bigint NOT NULL,
    -- the org-local date of clock_in, as attendance-svc decided it
    work_date     date NOT NULL,
    clock_in      timestamptz NOT NULL,
    clock_out     timestamptz,
    -- clock_out - clock_in - breaks, once closed
    net_seconds   bigint
);
CREATE INDEX sessions_by_month ON sessions (org_id, work_date);

CREATE TABLE leaves (
    id          bigint PRIMARY KEY,
    org_id      uuid NOT NULL,
    employee_id bigint NOT NULL,
    start_date  date NOT NULL,
    end_date    date NOT NULL,
    -- a tombstone, so a deletion replayed before its creation still wins
    deleted     boolean NOT NULL DEFAULT false
);
CREATE INDEX leaves_by_org ON leaves (org_id, start_date);

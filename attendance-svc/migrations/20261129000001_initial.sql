-- attendance-svc owns this schema: work sessions, breaks, leave, idempotency keys and its outbox.
-- Employees, locations and organizations belong to employee-svc; they are referred to by id only.

-- One row per employee who ever clocked: every write about an employee locks it first, so checks
-- of order and overlap see a settled state.
CREATE TABLE employee_state (
    org_id          uuid NOT NULL,
    employee_id     bigint NOT NULL,
    open_session_id bigint,
    -- the latest clock-in, break or clock-out instant of the employee
    last_event_at   timestamptz,
    PRIMARY KEY (org_id, employee_id)
);

CREATE TABLE sessions (
    id               bigserial PRIMARY KEY,
    org_id           uuid NOT NULL,
    employee_id      bigint NOT NULL,
    -- the org-local date of clock_in: the business date the session belongs to
    work_date        date NOT NULL,
    clock_in         timestamptz NOT NULL,
    clock_out        timestamptz,
    location_id      bigint NOT NULL,
    location         text NOT NULL,
    out_location_id  bigint,
    out_location     text,
    -- ended breaks, in seconds, and the start of the running one
    break_seconds    bigint NOT NULL DEFAULT 0 CHECK (break_seconds >= 0),
    break_open_since timestamptz,
    imported         boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (clock_out IS NULL OR clock_out >= clock_in),
    CHECK (clock_out IS NULL OR break_open_since IS NULL)
);
-- One open session per employee, enforced here and not only in code.
CREATE UNIQUE INDEX sessions_one_open ON sessions (org_id, employee_id) WHERE clock_out IS NULL;
CREATE INDEX sessions_by_date ON sessions (org_id, work_date, employee_id);
CREATE INDEX sessions_by_employee ON sessions (org_id, employee_id, clock_in);

CREATE TABLE breaks (
    id         bigserial PRIMARY KEY,
    session_id bigint NOT NULL REFERENCES sessions (id),
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE UNIQUE INDEX breaks_one_open ON breaks (session_id) WHERE ended_at IS NULL;
CREATE INDEX breaks_by_session ON breaks (session_id, started_at);

CREATE TABLE leaves (
    id          bigserial PRIMARY KEY,
    org_id      uuid NOT NULL,
    employee_id bigint NOT NULL,
    start_date  date NOT NULL,
    end_date    date NOT NULL,
    type        text NOT NULL CHECK (type IN ('annual', 'sick', 'unpaid', 'other')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (end_date >= start_date)
);
CREATE INDEX leaves_by_org ON leaves (org_id, start_date);
CREATE INDEX leaves_by_employee ON leaves (org_id, employee_id, start_date);

-- A write's first answer, replayed for a retry with the same key and request within 24 hours.
CREATE TABLE idempotency_keys (
    org_id       uuid NOT NULL,
    key          text NOT NULL,
    operation    text NOT NULL,
    request_hash bytea NOT NULL,
    -- the answer: an HTTP status and the reply data (success) or error message
    status       smallint,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

-- Events waiting to be relayed to JetStream (see clokio_runtime::outbox).
CREATE TABLE outbox (
    seq        bigserial PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE,
    subject    text NOT NULL,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

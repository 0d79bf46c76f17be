-- Payroll rules (SPEC §8): corrections with an audit trail, forgotten clock-outs closed
-- automatically, closed pay periods.

-- Every change of a session moves its revision on. Events carry the revision they describe, so
-- a projection keeps the latest state whatever order events arrive in.
ALTER TABLE sessions
    ADD COLUMN revision bigint NOT NULL DEFAULT 1,
    -- closed by the system after the org's max_shift_hours, not by a punch
    ADD COLUMN auto_closed boolean NOT NULL DEFAULT false;

-- The audit trail: one row per correction (and per automatic close), with the session as it
-- was and as it became. A deleted session's last state lives only here.
CREATE TABLE corrections (
    id          bigserial PRIMARY KEY,
    org_id      uuid NOT NULL,
    session_id  bigint NOT NULL,
    employee_id bigint NOT NULL,
    -- created | updated | deleted | auto_closed
    action      text NOT NULL CHECK (action IN ('created', 'updated', 'deleted', 'auto_closed')),
    -- who: an API key's name, an admin, or the system
    actor_kind  text NOT NULL CHECK (actor_kind IN ('api_key', 'admin', 'system')),
    actor_id    text,
    actor_name  text NOT NULL,
    reason      text NOT NULL,
    before      jsonb,
    after       jsonb,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX corrections_by_session ON corrections (org_id, session_id, id);

-- Closed pay periods (months). In a closed month, punches, corrections, imports and leave
-- changes are refused. Reopening deletes the row; `generation` counts closes, so an event of an
-- earlier close cannot be mistaken for the current one.
CREATE TABLE closed_periods (
    org_id     uuid NOT NULL,
    -- the first day of the month
    month      date NOT NULL,
    generation bigint NOT NULL,
    closed_at  timestamptz NOT NULL,
    closed_by  text NOT NULL,
    PRIMARY KEY (org_id, month)
);
CREATE TABLE period_generations (
    org_id     uuid NOT NULL,
    month      date NOT NULL,
    generation bigint NOT NULL,
    PRIMARY KEY (org_id, month)
);

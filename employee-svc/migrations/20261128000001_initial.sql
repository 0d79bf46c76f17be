-- employee-svc owns this schema: organizations, their API keys, locations and employees.

CREATE TABLE organizations (
    id                     uuid PRIMARY KEY,
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    plan                   text NOT NULL CHECK (plan IN ('basic', 'pro', 'enterprise')),
    rate_limit_per_minute  integer CHECK (rate_limit_per_minute > 0),
    timezone               text NOT NULL,
    work_days              smallint[] NOT NULL DEFAULT '{1,2,3,4,5}',
    schedule_start         time NOT NULL DEFAULT '09:00',
    hours_per_day          double precision NOT NULL DEFAULT 8 CHECK (hours_per_day > 0 AND hours_per_day <= 24),
    late_grace_minutes     integer NOT NULL DEFAULT 10 CHECK (late_grace_minutes BETWEEN 0 AND 1440),
    holidays               date[] NOT NULL DEFAULT '{}',
    offline_backdate_hours integer NOT NULL DEFAULT 72 CHECK (offline_backdate_hours BETWEEN 0 AND 720),
    -- last auto-generated employee code number
    employee_seq           bigint NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    -- Enterprise carries its operator-set limit; Basic and Pro use the configured plan limits.
    CHECK ((plan = 'enterprise') = (rate_limit_per_minute IS NOT NULL))
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations (id),
    name         text NOT NULL,
    key_hash     text NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    hint         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);
CREATE INDEX api_keys_org_idx ON api_keys (org_id, created_at);

CREATE TABLE locations (
    id            bigserial PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations (id),
    name          text NOT NULL,
    latitude      double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude     double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    radius_meters double precision NOT NULL CHECK (radius_meters > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT locations_org_name_key UNIQUE (org_id, name),
    CONSTRAINT locations_org_id_key UNIQUE (org_id, id)
);

CREATE TABLE employees (
    id            bigserial PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations (id),
    employee_code text NOT NULL,
    name          text NOT NULL,
    email         text NOT NULL,
    phone         text,
    position      text,
    department    text,
    location_id   bigint NOT NULL,
    password_hash text NOT NULL,
    birthdate     date,
    address       text,
    hire_date     date NOT NULL,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    role          text NOT NULL DEFAULT 'employee',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT employees_org_code_key UNIQUE (org_id, employee_code),
    -- an employee's location belongs to the employee's own organization
    CONSTRAINT employees_location_fkey FOREIGN KEY (org_id, location_id) REFERENCES locations (org_id, id)
);
CREATE UNIQUE INDEX employees_org_email_key ON employees (org_id, lower(email));

-- Events waiting to be relayed to JetStream (see clokio_runtime::outbox).
CREATE TABLE outbox (
    seq        bigserial PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE,
    subject    text NOT NULL,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

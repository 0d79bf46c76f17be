-- webhook-svc owns this schema: subscriptions, deliveries and the delivery log.

CREATE TABLE subscriptions (
    id              uuid PRIMARY KEY,
    org_id          uuid NOT NULL,
    url             text NOT NULL,
    platform        text NOT NULL CHECK (platform IN ('generic', 'slack', 'teams', 'discord', 'google_chat')),
    events          text[] NOT NULL,
    filters         jsonb NOT NULL DEFAULT '{}',
    template        text,
    active          boolean NOT NULL DEFAULT true,
    -- `whsec_…`; the previous one keeps signing for 24 h after a rotation
    secret          text NOT NULL,
    previous_secret text,
    previous_until  timestamptz,
    disabled_reason text,
    -- since when every attempt has failed (reset by a success)
    failing_since   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_by_org ON subscriptions (org_id, created_at);

CREATE TABLE deliveries (
    id              uuid PRIMARY KEY,
    org_id          uuid NOT NULL,
    subscription_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    -- the rendered body, the same bytes on every attempt
    body            bytea NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempt_count   integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deliveries_once UNIQUE (subscription_id, event_id)
);
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, created_at DESC);
CREATE INDEX deliveries_by_age ON deliveries (created_at);

CREATE TABLE attempts (
    id            bigserial PRIMARY KEY,
    delivery_id   uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    at            timestamptz NOT NULL,
    trigger       text NOT NULL CHECK (trigger IN ('scheduled', 'manual')),
    status_code   integer NOT NULL,
    error         text,
    latency_ms    integer NOT NULL,
    response_body text NOT NULL
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, at);

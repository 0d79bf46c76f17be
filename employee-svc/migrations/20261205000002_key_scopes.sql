-- Scoped, expiring API keys. Existing keys keep every scope (the "full" preset), so every client
-- keeps working; `expires_at` null means the key does not expire.
ALTER TABLE api_keys
    ADD COLUMN scopes text[] NOT NULL DEFAULT ARRAY[
        'attendance:read', 'attendance:write', 'employees:read', 'employees:write',
        'reports:read', 'leave:write', 'webhooks:manage', 'keys:manage', 'settings:manage',
        'events:read'
    ]::text[] CHECK (cardinality(scopes) > 0),
    ADD COLUMN expires_at timestamptz;
ALTER TABLE api_keys ALTER COLUMN scopes DROP DEFAULT;

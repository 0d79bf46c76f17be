-- Payroll rules (SPEC §8): forgotten clock-outs are closed after max_shift_hours; rounding and
-- automatic break deduction are off until the organization turns them on.
ALTER TABLE organizations
    ADD COLUMN max_shift_hours integer NOT NULL DEFAULT 16 CHECK (max_shift_hours BETWEEN 1 AND 72),
    ADD COLUMN rounding_minutes integer CHECK (rounding_minutes IN (1, 5, 6, 10, 15, 30)),
    ADD COLUMN rounding_mode text CHECK (rounding_mode IN ('nearest', 'up', 'down')),
    -- [{"after_hours": 6, "minimum_break_minutes": 30}, …], sorted by after_hours
    ADD COLUMN break_rules jsonb NOT NULL DEFAULT '[]',
    ADD CONSTRAINT rounding_whole CHECK ((rounding_minutes IS NULL) = (rounding_mode IS NULL));

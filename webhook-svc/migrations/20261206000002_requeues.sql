-- How often the overdue sweep put a delivery's scheduled attempt on the work queue again because
-- its own message was lost (a consumer stuck after a NATS leader change, a purged queue). Each
-- scheduled message carries the count it was queued under; an older copy is dropped, so a
-- delivery never has two schedules.
ALTER TABLE deliveries ADD COLUMN requeues integer NOT NULL DEFAULT 0;
-- The sweep's question: pending deliveries by when they were due.
CREATE INDEX deliveries_overdue ON deliveries ((COALESCE(next_attempt_at, created_at)))
    WHERE status = 'pending';

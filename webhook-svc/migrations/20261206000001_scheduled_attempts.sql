-- The attempts made on the retry schedule, apart from manual retries: the schedule's position.
-- `attempt_count` counts every attempt (what the delivery log shows); a manual retry used to
-- advance the schedule too, so a delivery retried by hand while it waited got fewer scheduled
-- attempts than the schedule has.
ALTER TABLE deliveries ADD COLUMN scheduled_attempts integer NOT NULL DEFAULT 0;
UPDATE deliveries d SET scheduled_attempts = (
    SELECT count(*) FROM attempts a WHERE a.delivery_id = d.id AND a.trigger = 'scheduled')
WHERE d.status = 'pending';

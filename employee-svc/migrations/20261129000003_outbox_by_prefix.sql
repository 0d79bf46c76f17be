-- The relay and the backlog gauge read one subject prefix's rows in commit order. Without this
-- index each batch walked every row of every other prefix sharing the table (a backlog left by
-- another deployment, or by test systems) before finding its own.
CREATE INDEX outbox_by_prefix ON outbox (split_part(subject, '.', 1), seq);

-- The trace context of the write that made each event, sent with it (see clokio_bus::trace).
ALTER TABLE outbox ADD COLUMN traceparent text, ADD COLUMN tracestate text;

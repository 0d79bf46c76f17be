-- Any update of an employee's state row moves its version on, whoever makes it: during a rolling
-- update, replicas of the previous release (which lock and update the row without knowing the
-- column) still invalidate what a new replica read, so its conditional write reads again.
CREATE FUNCTION employee_state_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;
CREATE TRIGGER employee_state_bump BEFORE UPDATE ON employee_state
    FOR EACH ROW EXECUTE FUNCTION employee_state_bump();

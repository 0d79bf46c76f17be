-- Every change of an employee's attendance (clock events, breaks, imported history) bumps the
-- version of their state row. A clock write reads the state and open session in one statement,
-- then writes only if the version is still the one it read (one statement, committed on its own),
-- instead of holding a row lock across a transaction of four or five round trips.
ALTER TABLE employee_state ADD COLUMN version bigint NOT NULL DEFAULT 0;

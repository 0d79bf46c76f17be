//! Database error mapping for employee-svc, in one place: unreachable database → 503, a unique
//! violation → 422 with the field's message, a value Postgres cannot store (SQLSTATE
//! class 22) → 422, anything else → 500 (logged, never shown).

use clokio_bus::BusError;

/// Maps a database error; `unique` names the message for each unique constraint.
pub fn map_err(err: sqlx::Error, unique: &[(&str, &str)]) -> BusError {
    if let Some(constraint) = clokio_runtime::db::unique_violation(&err)
        && let Some((_, message)) = unique.iter().find(|(name, _)| *name == constraint)
    {
        return BusError::invalid(*message);
    }
    clokio_runtime::db::bus_error(err)
}

/// The common case: no unique constraint expected.
pub fn err(err: sqlx::Error) -> BusError {
    map_err(err, &[])
}

//! Database error mapping for attendance-svc, in one place: unreachable database → 503, a value
//! Postgres cannot store → 422, the one-open-session and one-open-break indexes → 409, anything
//! else → 500 (logged, never shown).

use clokio_bus::BusError;

pub fn err(err: sqlx::Error) -> BusError {
    match clokio_runtime::db::unique_violation(&err).as_deref() {
        Some("sessions_one_open") => return BusError::conflict("Employee is already clocked in"),
        Some("breaks_one_open") => return BusError::conflict("Employee is already on a break"),
        _ => {}
    }
    clokio_runtime::db::bus_error(err)
}

//! Database errors of webhook-svc: the common mapping (503 unreachable, 500 otherwise).

pub fn err(err: sqlx::Error) -> clokio_bus::BusError {
    clokio_runtime::db::bus_error(err)
}

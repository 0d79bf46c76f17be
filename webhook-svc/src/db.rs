//! webhook-svc's errors: no request breaks one of its constraints, so the common type serves (503
//! unreachable, 500 otherwise).

pub use clokio_runtime::db::Result;

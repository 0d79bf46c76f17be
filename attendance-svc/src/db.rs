//! attendance-svc's errors ([`clokio_runtime::db::Error`]): on the bus the one-open-session and
//! one-open-break indexes are a 409; any other database error is mapped as everywhere (503
//! unreachable, 422 for a value Postgres cannot store, 500 otherwise).

use clokio_bus::ErrorCode;

/// The unique indexes a request can run into, with the answer for each.
#[derive(Debug)]
pub struct Unique;

impl clokio_runtime::db::Expected for Unique {
    const UNIQUE: &'static [(&'static str, ErrorCode, &'static str)] = &[
        (
            "sessions_one_open",
            ErrorCode::Conflict,
            "Employee is already clocked in",
        ),
        (
            "breaks_one_open",
            ErrorCode::Conflict,
            "Employee is already on a break",
        ),
    ];
}

pub type Error = clokio_runtime::db::Error<Unique>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

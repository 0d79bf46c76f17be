//! attendance-svc's errors: what the bus answers and what the database says, one type for `?` on
//! both. On the bus the one-open-session and one-open-break indexes are a 409 ([`EXPECTED`]);
//! any other database error is mapped as everywhere (503 unreachable, 422 for a value Postgres
//! cannot store, 500 otherwise).

use clokio_bus::{BusError, ErrorCode};

/// The unique indexes a request can run into, with the answer for each.
const EXPECTED: &[(&str, ErrorCode, &str)] = &[
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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<Error> for BusError {
    fn from(err: Error) -> Self {
        match err {
            Error::Bus(err) => err,
            Error::Db(err) => clokio_runtime::db::on_constraint(err, EXPECTED),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

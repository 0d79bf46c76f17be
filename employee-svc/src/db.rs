//! employee-svc's errors: what the bus answers and what the database says, one type for `?` on
//! both. On the bus a unique violation a request can cause is a 422 with the field's message
//! ([`EXPECTED`]); any other database error is mapped as everywhere (503 unreachable, 422 for a
//! value Postgres cannot store, 500 otherwise).

use clokio_bus::{BusError, ErrorCode};

/// The unique constraints a request can break, with the answer for each.
const EXPECTED: &[(&str, ErrorCode, &str)] = &[
    (
        "employees_org_code_key",
        ErrorCode::Unprocessable,
        "The employee code has already been taken",
    ),
    (
        "employees_org_email_key",
        ErrorCode::Unprocessable,
        "The email has already been taken",
    ),
    (
        "locations_org_name_key",
        ErrorCode::Unprocessable,
        "The name has already been taken",
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

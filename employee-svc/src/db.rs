//! employee-svc's errors ([`clokio_runtime::db::Error`]): on the bus a unique violation a request
//! can cause is a 422 with the field's message; any other database error is mapped as everywhere
//! (503 unreachable, 422 for a value Postgres cannot store, 500 otherwise).

use clokio_bus::ErrorCode;

/// The unique constraints a request can break, with the answer for each.
#[derive(Debug)]
pub struct Unique;

impl clokio_runtime::db::Expected for Unique {
    const UNIQUE: &'static [(&'static str, ErrorCode, &'static str)] = &[
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
}

pub type Error = clokio_runtime::db::Error<Unique>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

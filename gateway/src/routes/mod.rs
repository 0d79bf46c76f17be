//! The public API, one module per resource; each exposes its routes and they are merged here.

pub mod api_keys;
pub mod attendance;
pub mod corrections;
pub mod employees;
pub mod events;
pub mod leaves;
pub mod locations;
pub mod organization;
pub mod summary;
pub mod system;
pub mod webhooks;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use clokio_bus::ops::Operation;

use std::collections::HashMap;

use crate::body::required;
use crate::envelope::{self, ApiError};
use crate::{App, RequestId};

pub const RETRIEVED: &str = "Data retrieved successfully";

/// Every authenticated route under `/api/v1`.
pub fn api_routes() -> Router<App> {
    Router::new()
        .merge(employees::routes())
        .merge(attendance::routes())
        .merge(corrections::routes())
        .merge(leaves::routes())
        .merge(summary::routes())
        .merge(webhooks::routes())
        .merge(locations::routes())
        .merge(api_keys::routes())
        .merge(organization::routes())
        .merge(events::routes())
}

/// Sends `req` to its service and wraps the reply's bytes in the envelope.
pub async fn forward<O: Operation>(
    app: &App,
    rid: &RequestId,
    req: &O::Request,
    status: StatusCode,
    message: &str,
) -> Result<Response, ApiError> {
    let data = app.bus.call_raw::<O>(req, Some(&rid.0)).await?;
    Ok(envelope::raw(status, message, &data))
}

/// Parses `month` (1–12, `02` or `2`) and `year` (four digits).
pub fn month_year(q: &HashMap<String, String>) -> Result<(u32, i32), ApiError> {
    let get = |name: &str| {
        q.get(name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| required(name))
    };
    let (month, year) = (get("month")?, get("year")?);
    let month = (month.len() <= 2 && month.bytes().all(|b| b.is_ascii_digit()))
        .then(|| month.parse::<u32>().ok())
        .flatten()
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(|| ApiError::invalid("The month field must be between 1 and 12"))?;
    let year = (year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit()))
        .then(|| year.parse::<i32>().ok())
        .flatten()
        .filter(|y| *y >= 1970)
        .ok_or_else(|| ApiError::invalid("The year field must be a four-digit year from 1970"))?;
    Ok((month, year))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn months_with_or_without_leading_zero() {
        assert_eq!(
            month_year(&q(&[("month", "02"), ("year", "2026")])).unwrap(),
            (2, 2026)
        );
        assert_eq!(
            month_year(&q(&[("month", "2"), ("year", "2026")])).unwrap(),
            (2, 2026)
        );
        for bad in ["0", "13", "002", "x", "-1"] {
            assert_eq!(
                month_year(&q(&[("month", bad), ("year", "2026")]))
                    .unwrap_err()
                    .message,
                "The month field must be between 1 and 12"
            );
        }
        assert_eq!(
            month_year(&q(&[("year", "2026")])).unwrap_err().message,
            "The month field is required"
        );
        assert!(month_year(&q(&[("month", "1"), ("year", "26")])).is_err());
    }
}

//! `/api/v1/leaves`: record, list by month and delete employee leave.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get};
use axum::{Extension, Router};
use clokio_bus::ids::LeaveId;
use clokio_bus::ops::{
    Leave, LeaveCreate, LeaveCreateOp, LeaveDelete, LeaveDeleteOp, LeaveList, LeaveListOp,
    LeaveType,
};
use clokio_bus::types::EmployeeCode;
use utoipa::{IntoParams, ToSchema};

use super::attendance::idempotency_key;
use super::{RETRIEVED, forward};
use crate::auth::Auth;
use crate::body::{Fields, required};
use crate::envelope::ApiError;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::{App, RequestId};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/leaves", get(list).post(create))
        .route("/api/v1/leaves/{id}", delete(remove))
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LeaveBody {
    #[schema(example = "EMP-1042")]
    nip: String,
    #[schema(format = Date)]
    start_date: String,
    /// On or after `start_date`; at most 366 days in all.
    #[schema(format = Date)]
    end_date: String,
    #[schema(value_type = LeaveType)]
    r#type: String,
}

/// Record leave for an employee (org-local dates, inclusive).
#[utoipa::path(post, path = "/api/v1/leaves", tag = "Leave", request_body = LeaveBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for a retry of the same request within 24 h")),
    responses(
        (status = 201, body = Envelope<Leave>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "Employee not found", body = ErrorEnvelope),
        (status = 409, description = "Overlaps another leave of the employee", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn create(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    mut f: Fields,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
    let code = f.required_str("nip", 255)?;
    let start_date = f
        .optional_date("start_date")?
        .ok_or_else(|| required("start_date"))?;
    let end_date = f
        .optional_date("end_date")?
        .ok_or_else(|| required("end_date"))?;
    let kind = f
        .required_str("type", 16)?
        .parse::<LeaveType>()
        .map_err(ApiError::invalid)?;
    let nip = EmployeeCode::parse(&code).map_err(|_| ApiError::not_found("Employee not found"))?;
    let req = LeaveCreate {
        org_id: auth.org_id,
        nip,
        start_date,
        end_date,
        kind,
        idempotency_key,
    };
    forward::<LeaveCreateOp>(
        &app,
        &rid,
        &req,
        StatusCode::CREATED,
        "Leave created successfully",
    )
    .await
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct MonthParams {
    /// 1–12, with or without a leading zero.
    month: String,
    year: String,
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

/// Leaves that overlap a month, by start date.
#[utoipa::path(get, path = "/api/v1/leaves", tag = "Leave", params(MonthParams),
    responses(
        (status = 200, body = Envelope<Vec<Leave>>),
        (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn list(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (month, year) = month_year(&q)?;
    let req = LeaveList {
        org_id: auth.org_id,
        year,
        month,
    };
    forward::<LeaveListOp>(&app, &rid, &req, StatusCode::OK, RETRIEVED).await
}

/// Delete a leave.
#[utoipa::path(delete, path = "/api/v1/leaves/{id}", tag = "Leave",
    params(("id" = i64, Path, description = "The leave id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for a retry of the same request within 24 h")),
    responses(
        (status = 200, description = "The deleted leave", body = Envelope<Leave>),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn remove(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found("Leave not found"))?;
    let req = LeaveDelete {
        org_id: auth.org_id,
        id: LeaveId::new(id),
        idempotency_key,
    };
    forward::<LeaveDeleteOp>(
        &app,
        &rid,
        &req,
        StatusCode::OK,
        "Leave deleted successfully",
    )
    .await
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

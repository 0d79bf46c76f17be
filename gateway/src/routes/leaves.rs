//! `/api/v1/leaves`: record, list by month and delete employee leave.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
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

use super::{RETRIEVED, forward};
use crate::auth::Auth;
use crate::envelope::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::paging::{PageParams, forward_list};
use crate::request::{Body, Day, Month, Params, Text, Year};
use crate::{App, RequestId};
use serde::Deserialize;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/leaves", get(list).post(create))
        .route("/api/v1/leaves/{id}", delete(remove))
}

#[derive(Deserialize, ToSchema)]
pub struct LeaveBody {
    #[schema(inline, example = "EMP-1042")]
    nip: Text<255>,
    #[schema(inline)]
    start_date: Day,
    /// On or after `start_date`; at most 366 days in all.
    #[schema(inline)]
    end_date: Day,
    #[schema(value_type = LeaveType)]
    r#type: Text<16>,
}

/// Record leave for an employee (org-local dates, inclusive).
#[utoipa::path(post, path = "/api/v1/leaves", tag = "Leave", request_body = LeaveBody,
    params(IdempotencyKey),
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
    idem: IdempotencyKey,
    Body(body): Body<LeaveBody>,
) -> Result<Response, ApiError> {
    let idempotency_key = idem.key;
    let kind = body
        .r#type
        .0
        .parse::<LeaveType>()
        .map_err(ApiError::invalid)?;
    let nip =
        EmployeeCode::parse(&body.nip.0).map_err(|_| ApiError::not_found("Employee not found"))?;
    let req = LeaveCreate {
        org_id: auth.org_id,
        employee_code: nip,
        start_date: body.start_date.0,
        end_date: body.end_date.0,
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthParams {
    /// 1–12, with or without a leading zero.
    #[param(inline)]
    month: Month,
    /// Four digits, from 1970.
    #[param(inline)]
    year: Year,
}

/// Leaves that overlap a month, by start date.
#[utoipa::path(get, path = "/api/v1/leaves", tag = "Leave", params(MonthParams, PageParams),
    responses(
        (status = 200, description = "The list; a page of it with `page` or `per_page`", body = Envelope<Vec<Leave>>,
            headers(("X-Total-Count" = u64, description = "With a page: the whole list's length"),
                ("Link" = String, description = "With a page: RFC 8288 `first`, `prev`, `next` and `last`"))),
        (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn list(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    OriginalUri(uri): OriginalUri,
    Params(q): Params<MonthParams>,
    Params(page): Params<PageParams>,
) -> Result<Response, ApiError> {
    let page = page.page()?;
    let req = LeaveList {
        org_id: auth.org_id,
        year: q.year.0,
        month: q.month.0,
    };
    forward_list::<LeaveListOp>(&app, &rid, &req, page, &uri, RETRIEVED).await
}

/// Delete a leave.
#[utoipa::path(delete, path = "/api/v1/leaves/{id}", tag = "Leave",
    params(("id" = i64, Path, description = "The leave id"),
        IdempotencyKey),
    responses(
        (status = 200, description = "The deleted leave", body = Envelope<Leave>),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, description = "A malformed or reused Idempotency-Key", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn remove(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    idem: IdempotencyKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let idempotency_key = idem.key;
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

//! `/api/v1/employees`: list, create, and activate/deactivate by employee code.

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, patch};
use axum::{Extension, Router};
use clokio_bus::ops::{
    CreatedEmployee, Employee, EmployeeCreate, EmployeeCreateOp, EmployeeList, EmployeeListOp,
    EmployeeSetStatus, EmployeeSetStatusOp,
};
use clokio_bus::types::{Email, EmployeeCode, EmployeeStatus};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{RETRIEVED, forward};
use crate::auth::Auth;
use crate::envelope::ApiError;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::paging::{self, Page, PageParams};
use crate::request::{Body, Day, Password, Text, optional};
use crate::{App, OrgGeneration, RequestId};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/employees", get(list).post(create))
        .route(
            "/api/v1/employees/{employee_code}/status",
            patch(set_status),
        )
}

/// The query; a parameter given twice is refused (400) rather than one of them picked.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only employees with this status.
    #[param(value_type = Option<EmployeeStatus>)]
    status: Option<String>,
    #[param(ignore)]
    page: Option<String>,
    #[param(ignore)]
    per_page: Option<String>,
}

/// List all employees in your organization.
#[utoipa::path(get, path = "/api/v1/employees", tag = "Employees", params(ListQuery, PageParams),
    responses(
        (status = 200, description = "Employees, oldest first; a page of it with `page` or `per_page`", body = Envelope<Vec<Employee>>,
            headers(("X-Total-Count" = u64, description = "With a page: the whole list's length"),
                ("Link" = String, description = "With a page: RFC 8288 `first`, `prev`, `next` and `last`"))),
        (status = 400, description = "A malformed query (a parameter given twice)", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn list(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Extension(generation): Extension<OrgGeneration>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let page = Page::parse(q.page.as_deref(), q.per_page.as_deref())?;
    let status = q
        .status
        .as_deref()
        .map(|s| s.parse::<EmployeeStatus>().map_err(ApiError::invalid))
        .transpose()?;
    let req = EmployeeList {
        org_id: auth.org_id,
        status,
    };
    // Served from the gateway's cache when the org's generation proves nothing changed, else
    // when a fence does (see clokio_runtime::cache).
    let data = app
        .lists
        .get_or_load(auth.org_id, status, generation.0, || {
            let load = app.bus.call_raw::<EmployeeListOp>(&req, Some(&rid.0));
            async move { paging::IndexedList::new(load.await?) }
        })
        .await?;
    Ok(paging::respond_indexed(page, &uri, RETRIEVED, &data))
}

/// The create body. `employee_code` and `password` are generated when omitted.
#[derive(Deserialize, ToSchema)]
pub struct EmployeeCreateBody {
    #[schema(inline)]
    name: Text<255>,
    #[schema(value_type = String, format = Email)]
    email: Text<254>,
    /// Name of an existing location of the organization.
    #[schema(inline)]
    location: Text<255>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    phone: Option<Text<50>>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    position: Option<Text<255>>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    department: Option<Text<255>>,
    /// The NIP; 1-32 of `[A-Za-z0-9_-]`. Auto-generated (`00001`, `00002`, …) when omitted.
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    employee_code: Option<Text<255>>,
    /// 8-128 characters. Auto-generated and returned once when omitted.
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    password: Option<Password>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    birthdate: Option<Day>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    address: Option<Text<500>>,
    /// Defaults to today in the organization's time zone.
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    hire_date: Option<Day>,
}

/// Create a new employee (active, role `employee`).
#[utoipa::path(post, path = "/api/v1/employees", tag = "Employees", request_body = EmployeeCreateBody,
    responses(
        (status = 201, description = "Created; `password` is present only when it was generated", body = Envelope<CreatedEmployee>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn create(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Body(body): Body<EmployeeCreateBody>,
) -> Result<Response, ApiError> {
    let email = Email::parse(&body.email.0).map_err(ApiError::invalid)?;
    let employee_code = body
        .employee_code
        .map(|c| EmployeeCode::parse(&c.0))
        .transpose()
        .map_err(ApiError::invalid)?;
    let req = EmployeeCreate {
        org_id: auth.org_id,
        name: body.name.0,
        email,
        location: body.location.0,
        phone: body.phone.map(|t| t.0),
        position: body.position.map(|t| t.0),
        department: body.department.map(|t| t.0),
        employee_code,
        password: body.password.map(|p| p.0),
        birthdate: body.birthdate.map(|d| d.0),
        address: body.address.map(|t| t.0),
        hire_date: body.hire_date.map(|d| d.0),
    };
    forward::<EmployeeCreateOp>(
        &app,
        &rid,
        &req,
        StatusCode::CREATED,
        "Employee created successfully",
    )
    .await
}

#[derive(Deserialize, ToSchema)]
pub struct StatusBody {
    #[schema(value_type = EmployeeStatus)]
    status: Text<16>,
}

/// Activate or deactivate an employee. Inactive employees cannot clock in.
#[utoipa::path(patch, path = "/api/v1/employees/{employee_code}/status", tag = "Employees",
    params(("employee_code" = String, Path, description = "The employee code (NIP)")),
    request_body = StatusBody,
    responses(
        (status = 200, body = Envelope<Employee>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The organization's last active admin cannot be deactivated", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn set_status(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path(code): Path<String>,
    body: Result<Body<StatusBody>, ApiError>,
) -> Result<Response, ApiError> {
    // A code that cannot exist names no employee.
    let employee_code =
        EmployeeCode::parse(&code).map_err(|_| ApiError::not_found("Employee not found"))?;
    let Body(body) = body?;
    let status = body
        .status
        .0
        .parse::<EmployeeStatus>()
        .map_err(ApiError::invalid)?;
    let req = EmployeeSetStatus {
        org_id: auth.org_id,
        employee_code,
        status,
    };
    forward::<EmployeeSetStatusOp>(
        &app,
        &rid,
        &req,
        StatusCode::OK,
        "Employee status updated successfully",
    )
    .await
}

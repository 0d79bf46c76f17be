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
use crate::body::Fields;
use crate::envelope::ApiError;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::paging::{self, Page, PageParams};
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
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EmployeeCreateBody {
    #[schema(pattern = r"\S")]
    name: String,
    #[schema(format = Email)]
    email: String,
    /// Name of an existing location of the organization.
    #[schema(pattern = r"\S")]
    location: String,
    phone: Option<String>,
    position: Option<String>,
    department: Option<String>,
    /// The NIP; 1-32 of `[A-Za-z0-9_-]`. Auto-generated (`00001`, `00002`, …) when omitted.
    employee_code: Option<String>,
    /// 8-128 characters. Auto-generated and returned once when omitted.
    #[schema(min_length = 8, max_length = 128)]
    password: Option<String>,
    #[schema(format = Date)]
    birthdate: Option<String>,
    address: Option<String>,
    /// Defaults to today in the organization's time zone.
    #[schema(format = Date)]
    hire_date: Option<String>,
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
    mut f: Fields,
) -> Result<Response, ApiError> {
    let name = f.required_str("name", 255)?;
    let email = Email::parse(&f.required_str("email", 254)?).map_err(ApiError::invalid)?;
    let location = f.required_str("location", 255)?;
    let phone = f.optional_str("phone", 50)?;
    let position = f.optional_str("position", 255)?;
    let department = f.optional_str("department", 255)?;
    let employee_code = f
        .optional_str("employee_code", 255)?
        .map(|c| EmployeeCode::parse(&c))
        .transpose()
        .map_err(ApiError::invalid)?;
    let password = f.optional_raw_str("password")?;
    let birthdate = f.optional_date("birthdate")?;
    let address = f.optional_str("address", 500)?;
    let hire_date = f.optional_date("hire_date")?;
    let req = EmployeeCreate {
        org_id: auth.org_id,
        name,
        email,
        location,
        phone,
        position,
        department,
        employee_code,
        password,
        birthdate,
        address,
        hire_date,
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

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatusBody {
    status: EmployeeStatus,
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
    mut f: Fields,
) -> Result<Response, ApiError> {
    // A code that cannot exist names no employee.
    let employee_code =
        EmployeeCode::parse(&code).map_err(|_| ApiError::not_found("Employee not found"))?;
    let status = f
        .required_str("status", 16)?
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

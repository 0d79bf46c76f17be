//! `/api/v1/attendance/*`: clock events, attendance reads, detailed daily activity and history
//! import. The gateway parses and checks the shape of each request; attendance-svc applies the
//! rules.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use clokio_bus::ops::{
    ActivityQuery, BreakEndOp, BreakEnded, BreakStartOp, BreakStarted, ClockInOp, ClockOutOp,
    ClockRequest, ClockedIn, ClockedOut, Coordinates, DailyActivity, DailyOp, DailyQuery,
    DailyRecord, EmployeeActivityOp, EmployeeRangeOp, EmployeeRangeQuery, ImportBreak, ImportOp,
    ImportRecord, ImportRequest, Imported, MAX_IMPORT_BREAKS, MAX_IMPORT_RECORDS, Operation,
    OrgActivityOp, RangeOp, RangeQuery,
};
use clokio_bus::types::EmployeeCode;
use utoipa::{IntoParams, ToSchema};

use super::forward;
use crate::auth::Auth;
use crate::envelope::{self, ApiError};
use crate::idempotency::IdempotencyKey;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::paging::{PageParams, forward_list};
use crate::request::{
    Body, Day, Instant, Items, Latitude, Longitude, Params, Text, given, optional,
};
use crate::{App, RequestId};
use serde::Deserialize;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/attendance/clock-in", post(clock_in))
        .route("/api/v1/attendance/clock-out", post(clock_out))
        .route("/api/v1/attendance/break-start", post(break_start))
        .route("/api/v1/attendance/break-end", post(break_end))
        .route("/api/v1/attendance/daily", get(daily))
        .route("/api/v1/attendance/range", get(range))
        .route("/api/v1/attendance/employee/{nip}", get(employee))
        .route(
            "/api/v1/attendance/employee/{nip}/today",
            get(employee_today),
        )
        .route("/api/v1/attendance/today/detailed", get(today_detailed))
        .route("/api/v1/attendance/import", post(import))
}

/// A NIP from a body or path; a code that cannot exist names no employee.
fn nip(code: &str) -> Result<EmployeeCode, ApiError> {
    EmployeeCode::parse(code).map_err(|_| ApiError::not_found("Employee not found"))
}

/// The clock body.
#[derive(Deserialize, ToSchema)]
pub struct ClockBody {
    /// The employee code.
    #[schema(inline, example = "EMP-1042")]
    nip: Text<255>,
    /// With `longitude`: matched to the nearest location whose radius contains it.
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline, example = 32.0853)]
    latitude: Option<Latitude>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline, example = 34.7818)]
    longitude: Option<Longitude>,
    /// When it happened, for offline kiosks: RFC 3339, within the org's `offline_backdate_hours`
    /// and at most 2 minutes ahead, not before the employee's last event. Default: now.
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    timestamp: Option<Instant>,
}

/// The break body: a clock body without a position.
#[derive(Deserialize, ToSchema)]
pub struct BreakBody {
    #[schema(inline, example = "EMP-1042")]
    nip: Text<255>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    timestamp: Option<Instant>,
}

impl From<BreakBody> for ClockBody {
    fn from(b: BreakBody) -> Self {
        Self {
            nip: b.nip,
            latitude: None,
            longitude: None,
            timestamp: b.timestamp,
        }
    }
}

/// The clock request of a body: `latitude` and `longitude` come both or neither.
fn clock_request(
    auth: &Auth,
    idempotency_key: Option<String>,
    body: ClockBody,
) -> Result<ClockRequest, ApiError> {
    let coordinates = match (body.latitude, body.longitude) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "The longitude field is required when latitude is present",
            ));
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "The latitude field is required when longitude is present",
            ));
        }
        (Some(latitude), Some(longitude)) => Some(Coordinates {
            latitude: latitude.0,
            longitude: longitude.0,
        }),
    };
    Ok(ClockRequest {
        org_id: auth.org_id,
        employee_code: nip(&body.nip.0)?,
        coordinates,
        timestamp: body.timestamp.map(|t| t.0),
        idempotency_key,
    })
}

async fn clock<O: Operation<Request = ClockRequest>>(
    app: &App,
    auth: &Auth,
    rid: &RequestId,
    idem: IdempotencyKey,
    body: ClockBody,
    message: &str,
) -> Result<Response, ApiError> {
    let req = clock_request(auth, idem.key, body)?;
    forward::<O>(app, rid, &req, StatusCode::OK, message).await
}

/// Clock in an employee.
#[utoipa::path(post, path = "/api/v1/attendance/clock-in", tag = "Attendance", request_body = ClockBody,
    params(IdempotencyKey),
    responses(
        (status = 200, description = "Clocked in", body = Envelope<ClockedIn>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Employee is inactive", body = ErrorEnvelope),
        (status = 404, description = "Employee not found", body = ErrorEnvelope),
        (status = 409, description = "Employee is already clocked in", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope),
        (status = 422, description = "Validation, geofence or timestamp refused", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn clock_in(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    idem: IdempotencyKey,
    Body(body): Body<ClockBody>,
) -> Result<Response, ApiError> {
    clock::<ClockInOp>(
        &app,
        &auth,
        &rid,
        idem,
        body,
        "Employee clocked in successfully",
    )
    .await
}

/// Clock out an employee (a running break ends with it).
#[utoipa::path(post, path = "/api/v1/attendance/clock-out", tag = "Attendance", request_body = ClockBody,
    params(IdempotencyKey),
    responses(
        (status = 200, description = "Clocked out", body = Envelope<ClockedOut>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "Employee not found", body = ErrorEnvelope),
        (status = 409, description = "Employee is not clocked in", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn clock_out(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    idem: IdempotencyKey,
    Body(body): Body<ClockBody>,
) -> Result<Response, ApiError> {
    clock::<ClockOutOp>(
        &app,
        &auth,
        &rid,
        idem,
        body,
        "Employee clocked out successfully",
    )
    .await
}

/// Start a break for an employee who is clocked in.
#[utoipa::path(post, path = "/api/v1/attendance/break-start", tag = "Attendance", request_body = BreakBody,
    params(IdempotencyKey),
    responses(
        (status = 200, description = "Break started", body = Envelope<BreakStarted>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "Employee not found", body = ErrorEnvelope),
        (status = 409, description = "Employee is not clocked in / already on a break", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn break_start(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    idem: IdempotencyKey,
    Body(body): Body<BreakBody>,
) -> Result<Response, ApiError> {
    clock::<BreakStartOp>(
        &app,
        &auth,
        &rid,
        idem,
        body.into(),
        "Break started successfully",
    )
    .await
}

/// End a break for an employee who is on a break.
#[utoipa::path(post, path = "/api/v1/attendance/break-end", tag = "Attendance", request_body = BreakBody,
    params(IdempotencyKey),
    responses(
        (status = 200, description = "Break ended", body = Envelope<BreakEnded>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "Employee not found", body = ErrorEnvelope),
        (status = 409, description = "Employee is not on a break", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn break_end(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    idem: IdempotencyKey,
    Body(body): Body<BreakBody>,
) -> Result<Response, ApiError> {
    clock::<BreakEndOp>(
        &app,
        &auth,
        &rid,
        idem,
        body.into(),
        "Break ended successfully",
    )
    .await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DateParam {
    /// An org-local date, `YYYY-MM-DD`.
    #[param(value_type = String, format = Date)]
    date: Day,
}

/// Only leaving `date` out asks for the default: a blank value is not a date (the document says
/// `format: date`), so it is refused like any other.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OptionalDateParam {
    /// An org-local date, `YYYY-MM-DD`. Default: each employee's current shift (an open session
    /// begun on an earlier date included), else today.
    #[serde(default, deserialize_with = "given")]
    #[param(value_type = Option<String>, format = Date)]
    date: Option<Day>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    #[param(value_type = String, format = Date)]
    start: Day,
    /// At most 31 days after `start`, inclusive.
    #[param(value_type = String, format = Date)]
    end: Day,
}

/// As [`OptionalDateParam`], a blank date is refused.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OptionalRangeParams {
    /// Default: 30 days before `end`.
    #[serde(default, deserialize_with = "given")]
    #[param(value_type = Option<String>, format = Date)]
    start: Option<Day>,
    /// Default: today (org-local). At most 366 days after `start`.
    #[serde(default, deserialize_with = "given")]
    #[param(value_type = Option<String>, format = Date)]
    end: Option<Day>,
}

/// All attendance records of one org-local date: one per employee who attended.
#[utoipa::path(get, path = "/api/v1/attendance/daily", tag = "Attendance", params(DateParam, PageParams),
    responses(
        (status = 200, description = "The list; a page of it with `page` or `per_page`", body = Envelope<Vec<DailyRecord>>,
            headers(("X-Total-Count" = u64, description = "With a page: the whole list's length"),
                ("Link" = String, description = "With a page: RFC 8288 `first`, `prev`, `next` and `last`"))),
        (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn daily(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    OriginalUri(uri): OriginalUri,
    Params(q): Params<DateParam>,
    Params(page): Params<PageParams>,
) -> Result<Response, ApiError> {
    let req = DailyQuery {
        org_id: auth.org_id,
        date: q.date.0,
    };
    forward_list::<DailyOp>(
        &app,
        &rid,
        &req,
        page.page()?,
        &uri,
        "Daily attendance retrieved",
    )
    .await
}

/// Attendance records of a date range (at most 31 days), each with its `date`.
#[utoipa::path(get, path = "/api/v1/attendance/range", tag = "Attendance", params(RangeParams, PageParams),
    responses(
        (status = 200, description = "The list; a page of it with `page` or `per_page`", body = Envelope<Vec<DailyRecord>>,
            headers(("X-Total-Count" = u64, description = "With a page: the whole list's length"),
                ("Link" = String, description = "With a page: RFC 8288 `first`, `prev`, `next` and `last`"))),
        (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn range(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    OriginalUri(uri): OriginalUri,
    Params(q): Params<RangeParams>,
    Params(page): Params<PageParams>,
) -> Result<Response, ApiError> {
    let req = RangeQuery {
        org_id: auth.org_id,
        start: q.start.0,
        end: q.end.0,
    };
    forward_list::<RangeOp>(
        &app,
        &rid,
        &req,
        page.page()?,
        &uri,
        "Attendance records retrieved",
    )
    .await
}

/// One employee's attendance records by employee code (NIP).
#[utoipa::path(get, path = "/api/v1/attendance/employee/{nip}", tag = "Attendance",
    params(("nip" = String, Path, description = "The employee code"), OptionalRangeParams, PageParams),
    responses(
        (status = 200, description = "The list; a page of it with `page` or `per_page`", body = Envelope<Vec<DailyRecord>>,
            headers(("X-Total-Count" = u64, description = "With a page: the whole list's length"),
                ("Link" = String, description = "With a page: RFC 8288 `first`, `prev`, `next` and `last`"))),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn employee(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    OriginalUri(uri): OriginalUri,
    Path(code): Path<String>,
    q: Result<Params<OptionalRangeParams>, ApiError>,
    page: Result<Params<PageParams>, ApiError>,
) -> Result<Response, ApiError> {
    // The employee code first: one that cannot exist is 404 whatever the query.
    let employee_code = nip(&code)?;
    let (Params(q), Params(page)) = (q?, page?);
    let req = EmployeeRangeQuery {
        org_id: auth.org_id,
        employee_code,
        start: q.start.map(|d| d.0),
        end: q.end.map(|d| d.0),
    };
    forward_list::<EmployeeRangeOp>(
        &app,
        &rid,
        &req,
        page.page()?,
        &uri,
        "Employee attendance retrieved",
    )
    .await
}

/// Detailed daily activity of one employee: status, sessions, breaks, timeline, totals.
#[utoipa::path(get, path = "/api/v1/attendance/employee/{employee_code}/today", tag = "Attendance",
    params(("employee_code" = String, Path, description = "The employee code (NIP)"), OptionalDateParam),
    responses(
        (status = 200, body = Envelope<DailyActivity>),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn employee_today(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path(code): Path<String>,
    q: Result<Params<OptionalDateParam>, ApiError>,
) -> Result<Response, ApiError> {
    let employee_code = Some(nip(&code)?);
    let Params(q) = q?;
    let req = ActivityQuery {
        org_id: auth.org_id,
        employee_code,
        date: q.date.map(|d| d.0),
    };
    forward::<EmployeeActivityOp>(&app, &rid, &req, StatusCode::OK, "Daily activity retrieved")
        .await
}

/// Detailed daily activity of every active employee.
#[utoipa::path(get, path = "/api/v1/attendance/today/detailed", tag = "Attendance",
    params(OptionalDateParam),
    responses(
        (status = 200, body = Envelope<Vec<DailyActivity>>),
        (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn today_detailed(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Params(q): Params<OptionalDateParam>,
) -> Result<Response, ApiError> {
    let req = ActivityQuery {
        org_id: auth.org_id,
        employee_code: None,
        date: q.date.map(|d| d.0),
    };
    forward::<OrgActivityOp>(&app, &rid, &req, StatusCode::OK, "Daily activity retrieved").await
}

/// A break, as imports and corrections give it.
#[derive(Deserialize, ToSchema)]
pub struct BreakSpan {
    #[schema(inline)]
    start: Instant,
    #[schema(inline)]
    end: Instant,
}

impl From<BreakSpan> for ImportBreak {
    fn from(b: BreakSpan) -> Self {
        Self {
            start: b.start.0,
            end: b.end.0,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ImportRecordBody {
    #[schema(inline)]
    nip: Text<255>,
    #[schema(inline)]
    clock_in: Instant,
    #[schema(inline)]
    clock_out: Instant,
    /// Inside the session, not overlapping each other.
    #[serde(default)]
    #[schema(value_type = Option<Vec<BreakSpan>>)]
    breaks: Option<Items<BreakSpan, { MAX_IMPORT_BREAKS }>>,
    /// A location name of the org; default the employee's own location.
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    location: Option<Text<255>>,
}

/// The import body: up to 5,000 closed sessions, each at most 48 hours long with at most 50
/// breaks, and at most 20,000 breaks in all.
#[derive(Deserialize, ToSchema)]
pub struct ImportBody {
    #[schema(value_type = Vec<ImportRecordBody>, min_items = 1)]
    records: Items<ImportRecordBody, { MAX_IMPORT_RECORDS }>,
}

/// Import attendance history, all or nothing. A refusal names the record (`records.3: …`).
#[utoipa::path(post, path = "/api/v1/attendance/import", tag = "Attendance", request_body = ImportBody,
    params(IdempotencyKey),
    responses(
        (status = 201, description = "Imported", body = Envelope<Imported>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 409, description = "A record overlaps a stored session", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn import(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    idem: IdempotencyKey,
    Body(body): Body<ImportBody>,
) -> Result<Response, ApiError> {
    let idempotency_key = idem.key;
    let mut records = Vec::with_capacity(body.records.0.len());
    for (i, r) in body.records.0.into_iter().enumerate() {
        let code = r.nip.0;
        let nip = EmployeeCode::parse(&code)
            .map_err(|_| ApiError::invalid(format!("records.{i}: Employee {code} not found")))?;
        records.push(ImportRecord {
            employee_code: nip,
            clock_in: r.clock_in.0,
            clock_out: r.clock_out.0,
            breaks: r
                .breaks
                .map_or_else(Vec::new, |b| b.0.into_iter().map(Into::into).collect()),
            location: r.location.map(|l| l.0),
        });
    }
    let req = ImportRequest {
        org_id: auth.org_id,
        records,
        idempotency_key,
    };
    // Thousands of records take longer than a clock event: wait for them rather than answer 504
    // while the import goes on.
    let bus = app
        .bus
        .with_timeout(app.config.bus.request_timeout.max(IMPORT_TIMEOUT));
    let data = bus.call_raw::<ImportOp>(&req, Some(&rid.0)).await?;
    Ok(envelope::raw(
        StatusCode::CREATED,
        "Attendance imported successfully",
        &data,
    ))
}

/// How long the gateway waits for an import.
const IMPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

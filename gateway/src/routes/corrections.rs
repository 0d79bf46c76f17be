//! Payroll corrections and pay periods: `/api/v1/attendance/sessions` (fix, delete or add a
//! session, with a reason; its audit trail) and `/api/v1/periods` (close and reopen a month).
//! attendance-svc applies the rules; the gateway checks the shape and names the author (the
//! key's name).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use clokio_bus::ids::AttendanceId;
use clokio_bus::ops::{
    AttendanceSession, Correction, ImportRecord, MAX_IMPORT_BREAKS, MAX_REASON_LEN, OrgRef, Period,
    PeriodChange, PeriodCloseOp, PeriodListOp, PeriodReopenOp, SessionCreate, SessionCreateOp,
    SessionDelete, SessionDeleteOp, SessionGetOp, SessionHistoryOp, SessionRef, SessionUpdate,
    SessionUpdateOp,
};
use clokio_bus::types::EmployeeCode;
use utoipa::ToSchema;

use super::attendance::BreakSpan;
use super::{RETRIEVED, forward};
use crate::auth::Auth;
use crate::body::required;
use crate::envelope::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::request::{Body, Instant, Items, Text, optional};
use crate::{App, RequestId};
use serde::Deserialize;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/attendance/sessions", post(create))
        .route(
            "/api/v1/attendance/sessions/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/v1/attendance/sessions/{id}/history", get(history))
        .route("/api/v1/periods", get(periods))
        .route("/api/v1/periods/{period}/close", post(close))
        .route("/api/v1/periods/{period}/reopen", post(reopen))
}

fn session_id(id: &str) -> Result<AttendanceId, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(AttendanceId::new)
        .ok_or_else(|| ApiError::not_found("Attendance session not found"))
}

/// What to change; absent fields stay as they are. `breaks` replaces every break of the session.
#[derive(Deserialize, ToSchema)]
pub struct SessionPatchBody {
    /// Moves the clock-in (RFC 3339). The session then belongs to the org-local date of it.
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    clock_in: Option<Instant>,
    /// Moves the clock-out, or sets a missing one.
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    clock_out: Option<Instant>,
    /// The session's breaks, all of them, inside the session and apart.
    #[serde(default)]
    #[schema(value_type = Option<Vec<BreakSpan>>)]
    breaks: Option<Items<BreakSpan, { MAX_IMPORT_BREAKS }>>,
    /// A location name of the org.
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    location: Option<Text<255>>,
    /// Why (1-500 characters); kept in the audit trail.
    #[schema(inline)]
    reason: Text<{ MAX_REASON_LEN }>,
}

/// Correct a session: move the clock-in or clock-out, set a missing clock-out, replace its
/// breaks or its location. The same rules as live punches hold: no overlap with the employee's
/// other sessions, breaks inside the session, nothing in the future, nothing in a closed period.
/// The previous values stay in the session's history; an `attendance.corrected` event (webhook
/// event `correction`) goes out.
#[utoipa::path(patch, path = "/api/v1/attendance/sessions/{id}", tag = "Corrections",
    request_body = SessionPatchBody,
    params(("id" = i64, Path, description = "The session's `attendance_id`, as clock-in returned it"),
        IdempotencyKey),
    responses(
        (status = 200, description = "The corrected session", body = Envelope<AttendanceSession>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "An overlap with another session, a running break, or a closed period (`The period 2026-02 is closed`)", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn update(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    idem: IdempotencyKey,
    Path(id): Path<String>,
    // Read after the path: an id that names nothing is 404 whatever the body.
    body: Result<Body<SessionPatchBody>, ApiError>,
) -> Result<Response, ApiError> {
    let idempotency_key = idem.key;
    let id = session_id(&id)?;
    let Body(body) = body?;
    let reason = body.reason.0;
    let clock_in = body.clock_in.map(|at| at.0);
    let clock_out = body.clock_out.map(|at| at.0);
    let breaks = body.breaks.map(Items::into_vec);
    let location = body.location.map(|l| l.0);
    if clock_in.is_none() && clock_out.is_none() && breaks.is_none() && location.is_none() {
        return Err(ApiError::invalid(
            "The request must change at least one of clock_in, clock_out, breaks or location",
        ));
    }
    let req = SessionUpdate {
        org_id: auth.org_id,
        id,
        clock_in,
        clock_out,
        breaks,
        location,
        reason,
        actor: auth.actor(),
        idempotency_key,
    };
    forward::<SessionUpdateOp>(
        &app,
        &rid,
        &req,
        StatusCode::OK,
        "Attendance session corrected successfully",
    )
    .await
}

/// Delete a wrong session, with a reason (in the JSON body, or as the `reason` query parameter
/// for clients that cannot send a body with DELETE). Its last state stays in its history.
#[utoipa::path(delete, path = "/api/v1/attendance/sessions/{id}", tag = "Corrections",
    request_body(content = inline(ReasonBody), description = "`{\"reason\": \"…\"}`; or `?reason=` instead"),
    params(("id" = i64, Path, description = "The session's `attendance_id`"),
        ("reason" = Option<String>, Query, pattern = r"\S", description = "Why (when the body does not say)"),
        IdempotencyKey),
    responses(
        (status = 200, description = "The deleted session, as it was", body = Envelope<AttendanceSession>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "A closed period", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn remove(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    idem: IdempotencyKey,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Result<Body<ReasonBody>, ApiError>,
) -> Result<Response, ApiError> {
    let idempotency_key = idem.key;
    let id = session_id(&id)?;
    let Body(body) = body?;
    let reason = match body.reason {
        Some(r) => r.0,
        None => {
            let r = q.get("reason").map(|r| r.trim()).unwrap_or_default();
            if r.is_empty() {
                return Err(required("reason"));
            }
            if r.chars().count() > MAX_REASON_LEN {
                return Err(ApiError::invalid(format!(
                    "The reason field must not be greater than {MAX_REASON_LEN} characters"
                )));
            }
            r.to_owned()
        }
    };
    let req = SessionDelete {
        org_id: auth.org_id,
        id,
        reason,
        actor: auth.actor(),
        idempotency_key,
    };
    forward::<SessionDeleteOp>(
        &app,
        &rid,
        &req,
        StatusCode::OK,
        "Attendance session deleted successfully",
    )
    .await
}

#[derive(Deserialize, ToSchema)]
pub struct ReasonBody {
    /// Why (1-500 characters); kept in the audit trail. (Left out when `?reason=` says it.)
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline, required = true)]
    reason: Option<Text<{ MAX_REASON_LEN }>>,
}

/// A session that was never punched: the shape of an import record, with a reason.
#[derive(Deserialize, ToSchema)]
pub struct SessionCreateBody {
    #[schema(inline)]
    nip: Text<255>,
    #[schema(inline)]
    clock_in: Instant,
    #[schema(inline)]
    clock_out: Instant,
    #[serde(default)]
    #[schema(value_type = Option<Vec<BreakSpan>>)]
    breaks: Option<Items<BreakSpan, { MAX_IMPORT_BREAKS }>>,
    /// A location name of the org; default the employee's own location.
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    location: Option<Text<255>>,
    /// Why (1-500 characters); kept in the audit trail.
    #[schema(inline)]
    reason: Text<{ MAX_REASON_LEN }>,
}

/// Add a session that was never punched (a forgotten day), closed, at most 48 hours long.
#[utoipa::path(post, path = "/api/v1/attendance/sessions", tag = "Corrections",
    request_body = SessionCreateBody,
    params(IdempotencyKey),
    responses(
        (status = 201, description = "The new session", body = Envelope<AttendanceSession>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 409, description = "An overlap with another session, or a closed period", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn create(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    idem: IdempotencyKey,
    Body(body): Body<SessionCreateBody>,
) -> Result<Response, ApiError> {
    let idempotency_key = idem.key;
    let code = body.nip.0;
    // As the import says it: an unknown employee in a record is a 422.
    let nip = EmployeeCode::parse(&code)
        .map_err(|_| ApiError::invalid(format!("Employee {code} not found")))?;
    let clock_in = body.clock_in.0;
    let clock_out = body.clock_out.0;
    let breaks = body.breaks.map(Items::into_vec).unwrap_or_default();
    let location = body.location.map(|l| l.0);
    let reason = body.reason.0;
    let req = SessionCreate {
        org_id: auth.org_id,
        record: ImportRecord {
            employee_code: nip,
            clock_in,
            clock_out,
            breaks,
            location,
        },
        reason,
        actor: auth.actor(),
        idempotency_key,
    };
    forward::<SessionCreateOp>(
        &app,
        &rid,
        &req,
        StatusCode::CREATED,
        "Attendance session created successfully",
    )
    .await
}

/// One work session with its breaks, as corrections see it.
#[utoipa::path(get, path = "/api/v1/attendance/sessions/{id}", tag = "Corrections",
    params(("id" = i64, Path, description = "The session's `attendance_id`")),
    responses(
        (status = 200, body = Envelope<AttendanceSession>),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn show(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let req = SessionRef {
        org_id: auth.org_id,
        id: session_id(&id)?,
    };
    forward::<SessionGetOp>(&app, &rid, &req, StatusCode::OK, RETRIEVED).await
}

/// A session's audit trail, oldest first: every correction (and automatic close) with who made
/// it, when, why, and the session before and after. A deleted session keeps its history.
#[utoipa::path(get, path = "/api/v1/attendance/sessions/{id}/history", tag = "Corrections",
    params(("id" = i64, Path, description = "The session's `attendance_id`")),
    responses(
        (status = 200, body = Envelope<Vec<Correction>>),
        (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn history(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let req = SessionRef {
        org_id: auth.org_id,
        id: session_id(&id)?,
    };
    forward::<SessionHistoryOp>(&app, &rid, &req, StatusCode::OK, RETRIEVED).await
}

/// `2026-02` → (2026, 2).
fn period(s: &str) -> Result<(i32, u32), ApiError> {
    let bad = || ApiError::invalid("The period must be a month in YYYY-MM format");
    let (y, m) = s.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (year, month) = (
        y.parse::<i32>().map_err(|_| bad())?,
        m.parse::<u32>().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&month) || year < 1970 {
        return Err(bad());
    }
    Ok((year, month))
}

/// The organization's closed months, latest first.
#[utoipa::path(get, path = "/api/v1/periods", tag = "Periods",
    responses(
        (status = 200, body = Envelope<Vec<Period>>),
        (status = 401, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn periods(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
) -> Result<Response, ApiError> {
    let req = OrgRef {
        org_id: auth.org_id,
    };
    forward::<PeriodListOp>(&app, &rid, &req, StatusCode::OK, RETRIEVED).await
}

/// Close a month for payroll. From then on punches dated in it, corrections, imports and leave
/// changes touching it are refused (409 `The period 2026-02 is closed`), and its monthly summary
/// (JSON and CSV) carries `closed_at` and no longer changes. The month must have ended and have
/// no open session.
#[utoipa::path(post, path = "/api/v1/periods/{period}/close", tag = "Periods",
    params(("period" = String, Path, pattern = r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$", description = "The month, `YYYY-MM`, from 1970", example = "2026-02")),
    responses(
        (status = 200, body = Envelope<Period>),
        (status = 401, body = ErrorEnvelope),
        (status = 409, description = "Already closed, or open sessions remain", body = ErrorEnvelope),
        (status = 422, description = "Not a month, or one that has not ended", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn close(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path(p): Path<String>,
) -> Result<Response, ApiError> {
    let (year, month) = period(&p)?;
    let req = PeriodChange {
        org_id: auth.org_id,
        year,
        month,
        actor: auth.actor(),
    };
    forward::<PeriodCloseOp>(
        &app,
        &rid,
        &req,
        StatusCode::OK,
        "Period closed successfully",
    )
    .await
}

/// Reopen a closed month: writes in it are accepted again and its summary is computed live.
#[utoipa::path(post, path = "/api/v1/periods/{period}/reopen", tag = "Periods",
    params(("period" = String, Path, pattern = r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$", description = "The month, `YYYY-MM`, from 1970", example = "2026-02")),
    responses(
        (status = 200, body = Envelope<Period>),
        (status = 401, body = ErrorEnvelope),
        (status = 409, description = "The month is not closed", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn reopen(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path(p): Path<String>,
) -> Result<Response, ApiError> {
    let (year, month) = period(&p)?;
    let req = PeriodChange {
        org_id: auth.org_id,
        year,
        month,
        actor: auth.actor(),
    };
    forward::<PeriodReopenOp>(
        &app,
        &rid,
        &req,
        StatusCode::OK,
        "Period reopened successfully",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_months() {
        assert_eq!(period("2026-02").unwrap(), (2026, 2));
        assert_eq!(period("2026-12").unwrap(), (2026, 12));
        for bad in [
            "2026-2",
            "2026-13",
            "2026-00",
            "26-02",
            "2026/02",
            "x",
            "2026-02-01",
            "1969-12",
        ] {
            assert!(period(bad).is_err(), "{bad}");
        }
    }
}

//! `/api/v1/organization`: the caller's organization and its work rules. The plan and its limit
//! are the operator's (clokioctl), never the organization's.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use clokio_bus::ops::{OrgGetOp, OrgPatch, OrgRef, OrgUpdate, OrgUpdateOp, Organization};
use clokio_bus::payroll::{BreakRule, MAX_BREAK_RULES, Rounding, RoundingMode, check_break_rules};
use clokio_bus::types::{LocalTime, Timezone, Weekday};
use utoipa::ToSchema;

use super::{RETRIEVED, forward};
use crate::auth::Auth;
use crate::body::{Fields, parse_date};
use crate::envelope::ApiError;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::{App, RequestId};

pub fn routes() -> Router<App> {
    Router::new().route("/api/v1/organization", get(show).patch(update))
}

/// The caller's organization, with its plan and settings.
#[utoipa::path(get, path = "/api/v1/organization", tag = "Organization",
    responses((status = 200, body = Envelope<Organization>), (status = 401, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn show(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
) -> Result<Response, ApiError> {
    forward::<OrgGetOp>(
        &app,
        &rid,
        &OrgRef {
            org_id: auth.org_id,
        },
        StatusCode::OK,
        RETRIEVED,
    )
    .await
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SchedulePatchBody {
    /// `HH:MM`, org-local.
    start: Option<String>,
    /// Greater than 0, at most 24.
    #[schema(exclusive_minimum = 0.0, maximum = 24.0)]
    hours_per_day: Option<f64>,
    late_grace_minutes: Option<u32>,
}

/// Every field is optional; what is absent stays as it is. The body has the shape `GET` returns:
/// `timezone` beside `settings`. The settings' fields are also accepted at the top level (the
/// earlier flat shape), but not both ways at once.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrgPatchBody {
    /// IANA zone, e.g. `Europe/Berlin`.
    timezone: Option<String>,
    settings: Option<SettingsPatchBody>,
}

/// The organization's settings, as `GET` returns them under `settings`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SettingsPatchBody {
    work_days: Option<Vec<Weekday>>,
    schedule: Option<SchedulePatchBody>,
    /// Dates `YYYY-MM-DD`; replaces the whole list.
    holidays: Option<Vec<String>>,
    /// How far back an offline kiosk may date a clock event (0-720).
    offline_backdate_hours: Option<u32>,
    /// A session still open after this many hours is closed at clock-in + this (1-72, default 16).
    max_shift_hours: Option<u32>,
    /// Rounding of each session's worked time in totals, or null to turn it off.
    rounding: Option<Rounding>,
    /// Automatic break deduction, e.g. `[{"after_hours": 6, "minimum_break_minutes": 30},
    /// {"after_hours": 9, "minimum_break_minutes": 45}]`; `[]` turns it off.
    break_rules: Option<Vec<BreakRule>>,
}

/// Update the organization's time zone, work week, schedule, holidays, offline window or payroll
/// rules (forgotten clock-outs, rounding, automatic break deduction).
#[utoipa::path(patch, path = "/api/v1/organization", tag = "Organization", request_body = OrgPatchBody,
    responses((status = 200, body = Envelope<Organization>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, description = "Plan changes are operator-only", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn update(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    mut f: Fields,
) -> Result<Response, ApiError> {
    if f.contains("plan") || f.contains("rate_limit_per_minute") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "The plan can only be changed by the operator",
        ));
    }
    f.hoist("settings")?;
    let timezone = f
        .optional_str("timezone", 64)?
        .map(|tz| Timezone::parse(&tz))
        .transpose()
        .map_err(ApiError::invalid)?;
    let work_days = f.optional_list("work_days", 7, |s| {
        Weekday::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "The work_days field must only contain days of the week (monday … sunday)",
            )
        })
    })?;
    let holidays = f.optional_list("holidays", 1000, |s| parse_date("holidays", s))?;
    let offline_backdate_hours = f.optional_u32("offline_backdate_hours", 720)?;
    let max_shift_hours = f.optional_u32("max_shift_hours", u32::MAX)?;
    if max_shift_hours.is_some_and(|h| !(1..=72).contains(&h)) {
        return Err(ApiError::invalid(
            "The max_shift_hours field must be between 1 and 72",
        ));
    }
    let rounding_off = f.contains("rounding") && f.nullable_object("rounding")?.is_none();
    let rounding = match f.optional_object("rounding")? {
        None => None,
        Some(mut r) => {
            let minutes = r
                .optional_u32("minutes", 1440)?
                .ok_or_else(|| crate::body::required("rounding.minutes"))?;
            let mode = r
                .optional_str("mode", 16)?
                .ok_or_else(|| crate::body::required("rounding.mode"))?;
            let mode = RoundingMode::parse(&mode).ok_or_else(|| {
                ApiError::invalid("The rounding.mode field must be one of: nearest, up, down")
            })?;
            Some(Rounding::new(minutes, mode).map_err(ApiError::invalid)?)
        }
    };
    let break_rules = match f.optional_objects("break_rules", MAX_BREAK_RULES)? {
        None => None,
        Some(items) => {
            let mut rules = Vec::with_capacity(items.len());
            for (i, mut item) in items.into_iter().enumerate() {
                let after = format!("break_rules.{i}.after_hours");
                let minimum = format!("break_rules.{i}.minimum_break_minutes");
                let after_hours = item
                    .optional_f64(&after)?
                    .ok_or_else(|| crate::body::required(&after))?;
                let minimum_break_minutes = item
                    .optional_u32(&minimum, 240)?
                    .ok_or_else(|| crate::body::required(&minimum))?;
                rules.push(BreakRule {
                    after_hours,
                    minimum_break_minutes,
                });
            }
            Some(check_break_rules(rules).map_err(ApiError::invalid)?)
        }
    };
    let (mut schedule_start, mut hours_per_day, mut late_grace_minutes) = (None, None, None);
    if let Some(mut s) = f.optional_object("schedule")? {
        schedule_start = s
            .optional_str("start", 5)?
            .map(|t| LocalTime::parse(&t))
            .transpose()
            .map_err(|_| {
                ApiError::invalid("The schedule.start field must be a time in HH:MM format")
            })?;
        hours_per_day = s.optional_f64("hours_per_day")?;
        if hours_per_day.is_some_and(|h| !(h > 0.0 && h <= 24.0)) {
            return Err(ApiError::invalid(
                "The hours_per_day field must be greater than 0 and at most 24",
            ));
        }
        late_grace_minutes = s.optional_u32("late_grace_minutes", 1440)?;
    }
    let patch = OrgPatch {
        timezone,
        work_days,
        schedule_start,
        hours_per_day,
        late_grace_minutes,
        holidays,
        offline_backdate_hours,
        max_shift_hours,
        rounding,
        rounding_off,
        break_rules,
    };
    if patch == OrgPatch::default() {
        return Err(ApiError::invalid(
            "The request must change at least one setting",
        ));
    }
    let req = OrgUpdate {
        org_id: auth.org_id,
        patch,
    };
    forward::<OrgUpdateOp>(
        &app,
        &rid,
        &req,
        StatusCode::OK,
        "Organization updated successfully",
    )
    .await
}

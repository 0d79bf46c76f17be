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
use crate::body::Fields;
use crate::envelope::ApiError;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::request::{Day, Items, Number, Strings, Text, Whole, nullable, object, optional};
use crate::{App, RequestId};
use serde::Deserialize;

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

#[derive(Deserialize, ToSchema)]
pub struct SchedulePatchBody {
    /// `HH:MM`, org-local.
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    start: Option<Text<5>>,
    /// Greater than 0, at most 24.
    #[serde(default, deserialize_with = "optional")]
    #[schema(value_type = Option<f64>, exclusive_minimum = 0.0, maximum = 24.0)]
    hours_per_day: Option<Number>,
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    late_grace_minutes: Option<Whole<1440>>,
}

/// Every field is optional; what is absent stays as it is. The body has the shape `GET` returns:
/// `timezone` beside `settings`. The settings' fields are also accepted at the top level (the
/// earlier flat shape), but not both ways at once.
#[derive(Deserialize, ToSchema)]
pub struct OrgPatchBody {
    /// IANA zone, e.g. `Europe/Berlin`.
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    timezone: Option<Text<64>>,
    /// Read from the top level once its members are moved there (see `update`), so that both
    /// shapes give one set of field names in errors.
    #[serde(default)]
    settings: Option<SettingsPatchBody>,
}

/// The organization's settings, as `GET` returns them under `settings`.
#[derive(Default, Deserialize, ToSchema)]
pub struct SettingsPatchBody {
    #[serde(default, deserialize_with = "optional")]
    #[schema(value_type = Option<Vec<Weekday>>)]
    work_days: Option<Strings<7>>,
    #[serde(default, deserialize_with = "object")]
    schedule: Option<SchedulePatchBody>,
    /// Dates `YYYY-MM-DD`; replaces the whole list.
    #[serde(default, deserialize_with = "optional")]
    #[schema(value_type = Option<Vec<String>>)]
    holidays: Option<Strings<1000>>,
    /// How far back an offline kiosk may date a clock event (0-720).
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline)]
    offline_backdate_hours: Option<Whole<720>>,
    /// A session still open after this many hours is closed at clock-in + this (1-72, default 16).
    #[serde(default, deserialize_with = "optional")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 72)]
    max_shift_hours: Option<Whole<{ u32::MAX }>>,
    /// Rounding of each session's worked time in totals, or null to turn it off.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<RoundingBody>)]
    rounding: Option<Option<RoundingBody>>,
    /// Automatic break deduction, e.g. `[{"after_hours": 6, "minimum_break_minutes": 30},
    /// {"after_hours": 9, "minimum_break_minutes": 45}]`; `[]` turns it off.
    #[serde(default)]
    #[schema(value_type = Option<Vec<BreakRuleBody>>)]
    break_rules: Option<Items<BreakRuleBody, { MAX_BREAK_RULES }>>,
}

/// Rounding of each session's worked time.
#[derive(Deserialize, ToSchema)]
pub struct RoundingBody {
    /// 1, 5, 6, 10, 15 or 30.
    #[schema(inline)]
    minutes: Whole<1440>,
    #[schema(value_type = RoundingMode)]
    mode: Text<16>,
}

/// Past `after_hours` of a session, at least `minimum_break_minutes` of it count as a break.
#[derive(Deserialize, ToSchema)]
pub struct BreakRuleBody {
    #[schema(inline)]
    after_hours: Number,
    #[schema(inline)]
    minimum_break_minutes: Whole<240>,
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
    let top: OrgPatchBody = f.read()?;
    let body = OrgPatchBody {
        settings: Some(f.into_body()?),
        ..top
    };
    let settings = body.settings.unwrap_or_default();
    let timezone = body
        .timezone
        .map(|tz| Timezone::parse(&tz.0))
        .transpose()
        .map_err(ApiError::invalid)?;
    let work_days = settings
        .work_days
        .map(|days| {
            days.0
                .iter()
                .map(|s| {
                    Weekday::parse(s).ok_or_else(|| {
                        ApiError::invalid(
                            "The work_days field must only contain days of the week (monday … sunday)",
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let holidays = settings
        .holidays
        .map(|days| {
            days.0
                .iter()
                .map(|s| {
                    Day::parse(s).ok_or_else(|| {
                        ApiError::invalid(
                            "The holidays field must be a valid date in YYYY-MM-DD format",
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let offline_backdate_hours = settings.offline_backdate_hours.map(|h| h.0);
    let max_shift_hours = settings.max_shift_hours.map(|h| h.0);
    if max_shift_hours.is_some_and(|h| !(1..=72).contains(&h)) {
        return Err(ApiError::invalid(
            "The max_shift_hours field must be between 1 and 72",
        ));
    }
    let rounding_off = matches!(settings.rounding, Some(None));
    let rounding = match settings.rounding.flatten() {
        None => None,
        Some(r) => {
            let mode = RoundingMode::parse(&r.mode.0).ok_or_else(|| {
                ApiError::invalid("The rounding.mode field must be one of: nearest, up, down")
            })?;
            Some(Rounding::new(r.minutes.0, mode).map_err(ApiError::invalid)?)
        }
    };
    let break_rules = settings
        .break_rules
        .map(|rules| {
            let rules = rules
                .0
                .into_iter()
                .map(|r| BreakRule {
                    after_hours: r.after_hours.0,
                    minimum_break_minutes: r.minimum_break_minutes.0,
                })
                .collect();
            check_break_rules(rules).map_err(ApiError::invalid)
        })
        .transpose()?;
    let (mut schedule_start, mut hours_per_day, mut late_grace_minutes) = (None, None, None);
    if let Some(s) = settings.schedule {
        schedule_start = s
            .start
            .map(|t| LocalTime::parse(&t.0))
            .transpose()
            .map_err(|_| {
                ApiError::invalid("The schedule.start field must be a time in HH:MM format")
            })?;
        hours_per_day = s.hours_per_day.map(|h| h.0);
        if hours_per_day.is_some_and(|h| !(h > 0.0 && h <= 24.0)) {
            return Err(ApiError::invalid(
                "The hours_per_day field must be greater than 0 and at most 24",
            ));
        }
        late_grace_minutes = s.late_grace_minutes.map(|m| m.0);
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

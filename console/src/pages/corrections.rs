//! Attendance > a session: correct it (move the clock-in or clock-out, set a missing clock-out,
//! replace its breaks) or delete it, always with a reason, and read its audit trail. The same
//! bus operations as `PATCH`/`DELETE /api/v1/attendance/sessions/{id}` and its history, with the
//! admin as the author. Times are typed in the organization's zone.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use clokio_bus::ids::AttendanceId;
use clokio_bus::ops::{
    Actor, ActorKind, AttendanceSession, Correction, CorrectionAction, ImportBreak, OrgGetOp,
    OrgRef, SessionDelete, SessionDeleteOp, SessionGetOp, SessionHistoryOp, SessionRef,
    SessionUpdate, SessionUpdateOp,
};
use clokio_bus::types::Timezone;
use serde::Deserialize;

use super::{Chrome, hm, hours, opt, render_status};
use crate::App;
use crate::error::{Errors, PageError, refusal};
use crate::session::Session;

pub fn pages() -> Router<App> {
    Router::new().route("/attendance/sessions/{id}", get(show))
}

pub fn actions() -> Router<App> {
    Router::new()
        .route("/attendance/sessions/{id}", post(correct))
        .route("/attendance/sessions/{id}/delete", post(remove))
}

/// The admin as the author of a change.
pub fn actor(s: &Session) -> Actor {
    Actor {
        kind: ActorKind::Admin,
        id: Some(s.admin_id.to_string()),
        name: s.admin_name.clone(),
    }
}

fn session_id(id: &str) -> Result<AttendanceId, PageError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(AttendanceId::new)
        .ok_or(PageError::NotFound)
}

/// The correction form, as typed: local date-times `YYYY-MM-DDTHH:MM`, breaks one per line
/// `HH:MM-HH:MM`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CorrectionForm {
    #[serde(default)]
    clock_in: String,
    #[serde(default)]
    clock_out: String,
    #[serde(default)]
    breaks: String,
    #[serde(default)]
    reason: String,
}

const LOCAL: &str = "%Y-%m-%dT%H:%M";

/// A wall-clock time of the zone as an instant (the earlier one where the clocks go back, the
/// first existing one where they go forward).
fn instant(tz: Timezone, local: NaiveDateTime) -> DateTime<Utc> {
    let zone = tz.tz();
    let mut t = local;
    for _ in 0..8 {
        if let Some(at) = zone.from_local_datetime(&t).earliest() {
            return at.with_timezone(&Utc);
        }
        t += Duration::minutes(15);
    }
    local.and_utc()
}

impl CorrectionForm {
    fn of(s: &AttendanceSession, tz: Timezone) -> Self {
        let local = |at: DateTime<Utc>| at.with_timezone(&tz.tz()).format(LOCAL).to_string();
        Self {
            clock_in: local(s.state.clock_in),
            clock_out: s.state.clock_out.map(local).unwrap_or_default(),
            breaks: s
                .state
                .breaks
                .iter()
                .filter_map(|b| Some(format!("{}-{}", hm(b.start, tz), hm(b.end?, tz))))
                .collect::<Vec<_>>()
                .join("\n"),
            reason: String::new(),
        }
    }

    /// The request: only what differs from `s` is sent.
    fn request(
        &self,
        s: &AttendanceSession,
        tz: Timezone,
        session: &Session,
    ) -> Result<SessionUpdate, Errors> {
        let e = |field: &'static str, m: String| Errors::none().field(field, m);
        let reason =
            opt(&self.reason).ok_or_else(|| e("reason", "The reason field is required".into()))?;
        let parse = |field: &'static str, v: &str| {
            NaiveDateTime::parse_from_str(v.trim(), LOCAL)
                .map(|t| instant(tz, t))
                .map_err(|_| {
                    e(
                        field,
                        format!("The {field} field must be a date and time (YYYY-MM-DDTHH:MM)"),
                    )
                })
        };
        let clock_in = parse("clock_in", &self.clock_in)?;
        let clock_out = match opt(&self.clock_out) {
            None => None,
            Some(v) => Some(parse("clock_out", &v)?),
        };
        let breaks = self.breaks(tz, clock_in)?;
        let same_breaks = s
            .state
            .breaks
            .iter()
            .map(|b| b.end.map(|end| (b.start, end)))
            .collect::<Option<Vec<_>>>()
            .is_some_and(|stored| {
                stored == breaks.iter().map(|b| (b.start, b.end)).collect::<Vec<_>>()
            });
        let minute = |at: DateTime<Utc>| at.timestamp() / 60;
        Ok(SessionUpdate {
            org_id: session.org_id,
            id: s.attendance_id,
            clock_in: (minute(clock_in) != minute(s.state.clock_in)).then_some(clock_in),
            clock_out: clock_out.filter(|out| {
                s.state
                    .clock_out
                    .is_none_or(|was| minute(was) != minute(*out))
            }),
            breaks: (!same_breaks).then_some(breaks),
            location: None,
            reason,
            actor: actor(session),
            idempotency_key: None,
        })
    }

    /// Each line `HH:MM-HH:MM`, on the clock-in's local date, or the next day for times before
    /// the clock-in (a night shift).
    fn breaks(&self, tz: Timezone, clock_in: DateTime<Utc>) -> Result<Vec<ImportBreak>, Errors> {
        let local_in = clock_in.with_timezone(&tz.tz()).naive_local();
        let day: NaiveDate = local_in.date();
        let at = |t: NaiveTime| {
            let d = if t < local_in.time() {
                day + Duration::days(1)
            } else {
                day
            };
            instant(tz, d.and_time(t))
        };
        self.breaks
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|line| {
                let bad = || {
                    Errors::none().field(
                        "breaks",
                        format!("The breaks field must have one break per line as HH:MM-HH:MM ({line} is not one)"),
                    )
                };
                let (a, b) = line
                    .split_once(['-', '–'])
                    .ok_or_else(bad)?;
                let time = |v: &str| NaiveTime::parse_from_str(v.trim(), "%H:%M").map_err(|_| bad());
                let (start, end) = (at(time(a)?), at(time(b)?));
                // A break past midnight ends the next day.
                let end = if end <= start { end + Duration::days(1) } else { end };
                Ok(ImportBreak { start, end })
            })
            .collect()
    }
}

const FIELDS: &[&str] = &["clock_in", "clock_out", "breaks", "reason"];

/// One line of the audit trail, for people.
pub struct HistoryLine {
    pub at: String,
    pub action: &'static str,
    pub by: String,
    pub reason: String,
    pub before: String,
    pub after: String,
}

fn describe(state: Option<&clokio_bus::ops::SessionState>, tz: Timezone) -> String {
    let Some(s) = state else {
        return "—".to_owned();
    };
    let out = s.clock_out.map_or_else(|| "…".to_owned(), |t| hm(t, tz));
    let breaks: Vec<String> = s
        .breaks
        .iter()
        .map(|b| {
            format!(
                "{}–{}",
                hm(b.start, tz),
                b.end.map_or_else(|| "…".to_owned(), |t| hm(t, tz))
            )
        })
        .collect();
    let mut text = format!("{} {}–{}", s.work_date, hm(s.clock_in, tz), out);
    if !breaks.is_empty() {
        text.push_str(&format!(", breaks {}", breaks.join(", ")));
    }
    if s.auto_closed {
        text.push_str(" (closed automatically)");
    }
    text
}

impl HistoryLine {
    fn of(c: &Correction, tz: Timezone) -> Self {
        Self {
            at: c
                .at
                .with_timezone(&tz.tz())
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            action: match c.action {
                CorrectionAction::Created => "Added",
                CorrectionAction::Updated => "Corrected",
                CorrectionAction::Deleted => "Deleted",
                CorrectionAction::AutoClosed => "Closed automatically",
            },
            by: match c.by.kind {
                ActorKind::ApiKey => format!("API key “{}”", c.by.name),
                ActorKind::Admin => c.by.name.clone(),
                ActorKind::System => "Clokio".to_owned(),
            },
            reason: c.reason.clone(),
            before: describe(c.before.as_ref(), tz),
            after: describe(c.after.as_ref(), tz),
        }
    }
}

#[derive(Template)]
#[template(path = "session.html")]
struct SessionPage {
    chrome: Chrome,
    id: i64,
    name: String,
    code: String,
    date: String,
    timezone: String,
    total_hours: String,
    auto_closed: bool,
    open: bool,
    form: CorrectionForm,
    errors: Errors,
    delete_reason: String,
    delete_errors: Errors,
    history: Vec<HistoryLine>,
}

struct Shown {
    form: Option<CorrectionForm>,
    errors: Errors,
    delete_reason: String,
    delete_errors: Errors,
    status: StatusCode,
}

async fn page(
    app: &App,
    s: &Session,
    id: AttendanceId,
    shown: Shown,
) -> Result<Response, PageError> {
    let r = SessionRef {
        org_id: s.org_id,
        id,
    };
    let org_ref = OrgRef { org_id: s.org_id };
    let (org, session, history) = tokio::try_join!(
        app.bus.call::<OrgGetOp>(&org_ref),
        app.bus.call::<SessionGetOp>(&r),
        app.bus.call::<SessionHistoryOp>(&r)
    )?;
    let tz = org.timezone;
    render_status(
        shown.status,
        &SessionPage {
            chrome: Chrome::new(s, "attendance"),
            id: id.get(),
            name: session.employee_name.clone(),
            code: session.employee_code.to_string(),
            date: session.state.work_date.to_string(),
            timezone: tz.to_string(),
            total_hours: session.total_hours.map(hours).unwrap_or_default(),
            auto_closed: session.state.auto_closed,
            open: session.state.clock_out.is_none(),
            form: shown
                .form
                .unwrap_or_else(|| CorrectionForm::of(&session, tz)),
            errors: shown.errors,
            delete_reason: shown.delete_reason,
            delete_errors: shown.delete_errors,
            history: history
                .iter()
                .rev()
                .map(|c| HistoryLine::of(c, tz))
                .collect(),
        },
    )
}

/// `GET /attendance/sessions/{id}`.
async fn show(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = session_id(&id)?;
    page(
        &app,
        &s,
        id,
        Shown {
            form: None,
            errors: Errors::none(),
            delete_reason: String::new(),
            delete_errors: Errors::none(),
            status: StatusCode::OK,
        },
    )
    .await
}

/// `POST /attendance/sessions/{id}`: the correction.
async fn correct(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(form): Form<CorrectionForm>,
) -> Result<Response, PageError> {
    let id = session_id(&id)?;
    let r = SessionRef {
        org_id: s.org_id,
        id,
    };
    let org_ref = OrgRef { org_id: s.org_id };
    let (org, session) = tokio::try_join!(
        app.bus.call::<OrgGetOp>(&org_ref),
        app.bus.call::<SessionGetOp>(&r)
    )?;
    let again = |form: CorrectionForm, errors: Errors, status: StatusCode| Shown {
        form: Some(form),
        errors,
        delete_reason: String::new(),
        delete_errors: Errors::none(),
        status,
    };
    let req = match form.request(&session, org.timezone, &s) {
        Ok(req) => req,
        Err(errors) => {
            return page(
                &app,
                &s,
                id,
                again(form, errors, StatusCode::UNPROCESSABLE_ENTITY),
            )
            .await;
        }
    };
    if req.clock_in.is_none() && req.clock_out.is_none() && req.breaks.is_none() {
        let errors = Errors::general("Nothing was changed: edit a time or a break first");
        return page(
            &app,
            &s,
            id,
            again(form, errors, StatusCode::UNPROCESSABLE_ENTITY),
        )
        .await;
    }
    match app.bus.call::<SessionUpdateOp>(&req).await {
        Ok(done) => {
            let message = format!(
                "The session of {} on {} was corrected.",
                done.employee_name, done.state.work_date
            );
            let to = format!("/attendance/sessions/{}", id.get());
            Ok(super::done_with(&app, &s, &to, &message).await)
        }
        Err(err) => {
            // The service's messages about breaks do not start with a field's name.
            let about_breaks =
                err.message.starts_with("A break") || err.message.starts_with("breaks");
            let message = err.message.clone();
            let (status, mut errors) = refusal(err, FIELDS)?;
            if about_breaks {
                errors = Errors::none().field("breaks", message);
            }
            page(&app, &s, id, again(form, errors, status)).await
        }
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    reason: String,
}

/// `POST /attendance/sessions/{id}/delete`.
async fn remove(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<DeleteForm>,
) -> Result<Response, PageError> {
    let id = session_id(&id)?;
    let again = |errors: Errors, status: StatusCode| Shown {
        form: None,
        errors: Errors::none(),
        delete_reason: f.reason.clone(),
        delete_errors: errors,
        status,
    };
    let Some(reason) = opt(&f.reason) else {
        let errors = Errors::none().field("delete_reason", "The reason field is required");
        return page(
            &app,
            &s,
            id,
            again(errors, StatusCode::UNPROCESSABLE_ENTITY),
        )
        .await;
    };
    let req = SessionDelete {
        org_id: s.org_id,
        id,
        reason,
        actor: actor(&s),
        idempotency_key: None,
    };
    match app.bus.call::<SessionDeleteOp>(&req).await {
        Ok(gone) => {
            let message = format!(
                "The session of {} on {} was deleted.",
                gone.employee_name, gone.state.work_date
            );
            let to = format!("/attendance/today?date={}", gone.state.work_date);
            Ok(super::done_with(&app, &s, &to, &message).await)
        }
        Err(err) => {
            let (status, errors) = refusal(err, &[])?;
            let errors = match errors.general {
                Some(m) => Errors::none().field("delete_reason", m),
                None => errors,
            };
            page(&app, &s, id, again(errors, status)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> Timezone {
        Timezone::parse("Europe/Berlin").unwrap()
    }

    #[test]
    fn breaks_are_local_times_on_the_shift_s_days() {
        // A night shift from 22:00 CET: a break at 01:00 is the next morning.
        let clock_in: DateTime<Utc> = "2026-02-10T21:00:00Z".parse().unwrap();
        let form = CorrectionForm {
            breaks: "23:30-23:45\n01:00–01:30\n\n".into(),
            ..CorrectionForm::default()
        };
        let b = form.breaks(berlin(), clock_in).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].start.to_rfc3339(), "2026-02-10T22:30:00+00:00");
        assert_eq!(b[1].start.to_rfc3339(), "2026-02-11T00:00:00+00:00");
        assert_eq!(b[1].end.to_rfc3339(), "2026-02-11T00:30:00+00:00");
        let bad = CorrectionForm {
            breaks: "noon".into(),
            ..CorrectionForm::default()
        };
        assert!(bad.breaks(berlin(), clock_in).unwrap_err().has("breaks"));
    }

    #[test]
    fn local_times_that_do_not_exist_move_forward() {
        // 02:30 on 29 March 2026 does not exist in Berlin: 03:00 CEST, 01:00Z.
        let t = NaiveDateTime::parse_from_str("2026-03-29T02:30", LOCAL).unwrap();
        assert_eq!(
            instant(berlin(), t).to_rfc3339(),
            "2026-03-29T01:00:00+00:00"
        );
    }
}

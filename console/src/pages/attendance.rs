//! Attendance > Today: every active employee with their current status (working, on break,
//! clocked out, not in), first clock-in and hours so far, kept current without reload by
//! Server-Sent Events (see [`crate::live`]); with a date, that day in detail (sessions and
//! breaks). Both read attendance-svc's detailed activity, as `GET /api/v1/attendance/today/detailed`
//! does.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use chrono::NaiveDate;
use clokio_bus::ids::OrgId;
use clokio_bus::ops::{
    ActivityQuery, CurrentStatus, DailyActivity, EmployeeActivityOp, OrgActivityOp, OrgGetOp,
    OrgRef,
};
use clokio_bus::types::{EmployeeCode, Timezone};
use clokio_bus::{Bus, BusError};
use serde::Deserialize;

use super::{Chrome, hm, hours, render_status};
use crate::App;
use crate::error::{Errors, PageError};
use crate::session::Session;

pub fn pages() -> Router<App> {
    Router::new().route("/attendance/today", get(today))
}

pub fn actions() -> Router<App> {
    Router::new().route("/attendance/live", get(live))
}

/// One employee's line on the board.
pub struct Row {
    pub code: String,
    pub name: String,
    /// `working`, `on_break`, `clocked_out` or `not_in`.
    pub status: &'static str,
    pub status_label: &'static str,
    pub first_in: String,
    pub last_out: String,
    /// Net hours so far, two decimals.
    pub hours: String,
    /// The same, unrounded, for the script that keeps a working employee's hours moving.
    pub net_hours: f64,
    pub sessions: Vec<SessionLine>,
}

pub struct SessionLine {
    /// The session's page (correct or delete it).
    pub id: i64,
    pub auto_closed: bool,
    pub clock_in: String,
    pub clock_out: String,
    pub location: String,
    pub breaks: Vec<String>,
}

impl Row {
    pub fn of(a: &DailyActivity, tz: Timezone) -> Self {
        let (status, status_label) = match a.current_status {
            CurrentStatus::Working => ("working", "Working"),
            CurrentStatus::OnBreak => ("on_break", "On break"),
            CurrentStatus::ClockedOut => ("clocked_out", "Clocked out"),
            CurrentStatus::NotClockedIn => ("not_in", "Not in"),
        };
        let sessions = a
            .work_sessions
            .iter()
            .map(|w| SessionLine {
                id: w.attendance_id.get(),
                auto_closed: w.auto_closed,
                clock_in: hm(w.clock_in, tz),
                clock_out: w.clock_out.map(|t| hm(t, tz)).unwrap_or_default(),
                location: w.location.clone(),
                breaks: a
                    .break_sessions
                    .iter()
                    .filter(|b| b.attendance_id == w.attendance_id)
                    .map(|b| {
                        format!(
                            "{}–{} ({} min)",
                            hm(b.start, tz),
                            b.end.map(|t| hm(t, tz)).unwrap_or_else(|| "…".to_owned()),
                            b.duration_minutes
                        )
                    })
                    .collect(),
            })
            .collect();
        Self {
            code: a.employee_code.to_string(),
            name: a.employee_name.clone(),
            status,
            status_label,
            first_in: a
                .summary
                .first_clock_in
                .map(|t| hm(t, tz))
                .unwrap_or_default(),
            last_out: a
                .summary
                .last_clock_out
                .map(|t| hm(t, tz))
                .unwrap_or_default(),
            hours: hours(a.summary.net_work_hours),
            net_hours: a.summary.net_work_hours,
            sessions,
        }
    }
}

#[derive(Template)]
#[template(path = "today_row.html")]
struct RowView<'a> {
    row: &'a Row,
}

/// One employee's current row, rendered, for the live boards.
pub async fn live_row(
    bus: &Bus,
    org: OrgId,
    tz: Timezone,
    code: &EmployeeCode,
) -> Result<String, BusError> {
    let activity = bus
        .call::<EmployeeActivityOp>(&ActivityQuery {
            org_id: org,
            employee_code: Some(code.clone()),
            date: None,
        })
        .await?;
    RowView {
        row: &Row::of(&activity, tz),
    }
    .render()
    .map_err(|err| {
        tracing::error!(%err, "row template failed");
        BusError::internal()
    })
}

#[derive(Template)]
#[template(path = "today.html")]
struct TodayPage {
    chrome: Chrome,
    /// The date shown, `YYYY-MM-DD` (today in the organization's zone when live).
    date: String,
    live: bool,
    /// When the rows were read (ms since the epoch): the live stream catches up from here.
    read_at_ms: i64,
    timezone: String,
    rows: Vec<Row>,
    working: usize,
    on_break: usize,
    clocked_out: usize,
    not_in: usize,
    errors: Errors,
}

#[derive(Deserialize)]
pub struct TodayQuery {
    date: Option<String>,
}

/// `GET /attendance/today[?date=YYYY-MM-DD]`.
async fn today(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Query(q): Query<TodayQuery>,
) -> Result<Response, PageError> {
    let raw = q.date.as_deref().map(str::trim).filter(|d| !d.is_empty());
    let (date, errors) = match raw.map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d")) {
        None => (None, Errors::none()),
        Some(Ok(d)) => (Some(d), Errors::none()),
        Some(Err(_)) => (
            None,
            Errors::none().field(
                "date",
                "The date field must be a valid date in YYYY-MM-DD format",
            ),
        ),
    };
    let read_at_ms = chrono::Utc::now().timestamp_millis();
    let (org_ref, query) = (
        OrgRef { org_id: s.org_id },
        ActivityQuery {
            org_id: s.org_id,
            employee_code: None,
            date,
        },
    );
    let (org, activity) = tokio::try_join!(
        app.bus.call::<OrgGetOp>(&org_ref),
        app.bus.call::<OrgActivityOp>(&query)
    )?;
    let tz = org.timezone;
    let rows: Vec<Row> = activity.iter().map(|a| Row::of(a, tz)).collect();
    let count = |status: &str| rows.iter().filter(|r| r.status == status).count();
    let page = TodayPage {
        chrome: Chrome::new(&s, "attendance"),
        date: date.unwrap_or_else(|| tz.today()).to_string(),
        live: date.is_none(),
        read_at_ms,
        timezone: tz.to_string(),
        working: count("working"),
        on_break: count("on_break"),
        clocked_out: count("clocked_out"),
        not_in: count("not_in"),
        rows,
        errors,
    };
    let status = if page.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    render_status(status, &page)
}

#[derive(Deserialize)]
pub struct LiveQuery {
    since: Option<i64>,
}

/// How often an open stream checks that its session still stands (the admin's own check is
/// cached for `admin_check`, so a removed admin's board stops within about two seconds).
const RECHECK: Duration = Duration::from_secs(1);

/// `GET /attendance/live`: the organization's row updates as Server-Sent Events (`row` with
/// `{code, html}`; `reload` when this board fell behind; `signed-out` when the session ended).
async fn live(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Query(q): Query<LiveQuery>,
) -> Response {
    let sub = app.live.subscribe(s.org_id, q.since.map(|ms| ms - 1000));
    // The first tick of an interval is immediate; this stream has just passed its checks.
    let mut check = tokio::time::interval(RECHECK);
    check.reset();
    let state = Stream {
        sub,
        app: app.clone(),
        session: s,
        stopping: app.stopping.clone(),
        check,
        ended: false,
    };
    let events = futures::stream::unfold(state, |mut st| async move {
        if st.ended {
            return None;
        }
        let event = st.next().await?;
        Some((Ok::<_, Infallible>(event), st))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

struct Stream {
    sub: crate::live::Subscription,
    app: App,
    session: Session,
    stopping: tokio::sync::watch::Receiver<bool>,
    check: tokio::time::Interval,
    ended: bool,
}

impl Stream {
    async fn next(&mut self) -> Option<Event> {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            if *self.stopping.borrow() {
                return None;
            }
            tokio::select! {
                update = self.sub.recv() => match update {
                    Ok(update) => return Event::default().event("row").json_data(&*update).ok(),
                    Err(RecvError::Lagged(_)) => return Some(Event::default().event("reload").data("behind")),
                    Err(RecvError::Closed) => return None,
                },
                _ = self.check.tick() => {
                    // Only a definite answer ends the stream; a moment without Redis or the bus
                    // does not.
                    let ended = matches!(self.app.sessions.alive(&self.session.key).await, Ok(false))
                        || matches!(self.app.admin_valid(&self.session).await, Ok(false));
                    if ended {
                        self.ended = true;
                        return Some(Event::default().event("signed-out").data("signed out"));
                    }
                }
                _ = self.stopping.changed() => return None,
            }
        }
    }
}

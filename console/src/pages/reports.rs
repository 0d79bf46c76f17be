//! Reports > Monthly Summary: month and year selectors, the table for payroll (days present,
//! late, total hours, overtime, leave days, absences) and "Export CSV", which downloads exactly
//! what `GET /api/v1/attendance/summary?format=csv` does: the same file name and the same bytes,
//! streamed from reporting-svc chunk by chunk.

use askama::Template;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono::Datelike;
use clokio_bus::ops::{
    OrgGetOp, OrgRef, PeriodChange, PeriodCloseOp, PeriodListOp, PeriodReopenOp, SummaryOp,
    SummaryQuery, SummaryRow, summary_csv_file_name,
};
use serde::Deserialize;

use super::{Chrome, hours, query_string, render_status};
use crate::App;
use crate::error::{Errors, PageError};
use crate::session::Session;

pub fn pages() -> Router<App> {
    Router::new().route("/reports/summary", get(summary))
}

pub fn actions() -> Router<App> {
    Router::new()
        .route("/reports/summary.csv", get(csv))
        .route("/reports/summary/close", post(close))
        .route("/reports/summary/reopen", post(reopen))
}

pub const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

#[derive(Deserialize)]
pub struct MonthQuery {
    pub month: Option<String>,
    pub year: Option<String>,
}

/// The month and year asked for (as the API parses them), or this month in the org's zone.
pub fn month_year(q: &MonthQuery, today: chrono::NaiveDate) -> Result<(u32, i32), Errors> {
    let month = match q.month.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        None => today.month(),
        Some(m) => m
            .parse::<u32>()
            .ok()
            .filter(|m| (1..=12).contains(m) && m.to_string().len() <= 2)
            .ok_or_else(|| {
                Errors::none().field("month", "The month field must be between 1 and 12")
            })?,
    };
    let year = match q.year.as_deref().map(str::trim).filter(|y| !y.is_empty()) {
        None => today.year(),
        Some(y) => (y.len() == 4)
            .then(|| y.parse::<i32>().ok())
            .flatten()
            .filter(|y| *y >= 1970)
            .ok_or_else(|| {
                Errors::none().field("year", "The year field must be a four-digit year from 1970")
            })?,
    };
    Ok((month, year))
}

/// Today in the organization's zone, which a month left out of `q` defaults to. Asked of
/// employee-svc only when it is needed: links and forms name both month and year.
pub async fn default_day(
    app: &App,
    s: &Session,
    q: &MonthQuery,
) -> Result<chrono::NaiveDate, PageError> {
    let given = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
    if given(&q.month) && given(&q.year) {
        // Not a default then: only the fallback of a page refusing a bad month shows it.
        return Ok(chrono::Utc::now().date_naive());
    }
    let org = app
        .bus
        .call::<OrgGetOp>(&OrgRef { org_id: s.org_id })
        .await?;
    Ok(org.timezone.today())
}

pub struct SummaryView {
    pub name: String,
    pub code: String,
    pub department: String,
    pub days_present: u32,
    pub late_count: u32,
    pub total_hours: String,
    pub overtime_hours: String,
    pub leave_days: u32,
    pub absence_count: u32,
}

impl From<&SummaryRow> for SummaryView {
    fn from(r: &SummaryRow) -> Self {
        Self {
            name: r.employee_name.clone(),
            code: r.employee_code.to_string(),
            department: r.department.clone().unwrap_or_default(),
            days_present: r.days_present,
            late_count: r.late_count,
            total_hours: hours(r.total_hours),
            overtime_hours: hours(r.overtime_hours),
            leave_days: r.leave_days,
            absence_count: r.absence_count,
        }
    }
}

#[derive(Template)]
#[template(path = "summary.html")]
struct SummaryPage {
    chrome: Chrome,
    month: u32,
    year: i32,
    years: Vec<i32>,
    months: Vec<(u32, &'static str)>,
    rows: Vec<SummaryView>,
    total_hours: String,
    overtime_hours: String,
    csv_href: String,
    errors: Errors,
    /// `2026-02`.
    period: String,
    /// "Closed for payroll on … by …" when closed.
    closed: Option<String>,
    /// Whether the month has ended (only then can it be closed).
    ended: bool,
}

/// `GET /reports/summary[?month=&year=]`.
async fn summary(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Query(q): Query<MonthQuery>,
) -> Result<Response, PageError> {
    let org = app
        .bus
        .call::<OrgGetOp>(&OrgRef { org_id: s.org_id })
        .await?;
    let today = org.timezone.today();
    let (month, year, errors) = match month_year(&q, today) {
        Ok((m, y)) => (m, y, Errors::none()),
        Err(errors) => (today.month(), today.year(), errors),
    };
    let (query, org_ref) = (
        SummaryQuery {
            org_id: s.org_id,
            year,
            month,
        },
        OrgRef { org_id: s.org_id },
    );
    let (rows, periods) = tokio::try_join!(
        app.bus.call::<SummaryOp>(&query),
        app.bus.call::<PeriodListOp>(&org_ref)
    )?;
    let period = format!("{year:04}-{month:02}");
    let closed = periods.iter().find(|p| p.period == period).map(|p| {
        format!(
            "Closed for payroll on {} by {}. These figures no longer change; corrections, punches, imports and leave in {} are refused until it is reopened.",
            p.closed_at
                .map(|at| at.with_timezone(&org.timezone.tz()).format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default(),
            p.closed_by.clone().unwrap_or_default(),
            MONTHS[month as usize - 1],
        )
    });
    let ended = chrono::NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.checked_add_months(chrono::Months::new(1)))
        .is_some_and(|next| next <= today);
    let sum = |f: fn(&SummaryRow) -> f64| hours(rows.iter().map(f).sum::<f64>());
    let first = org.created_at.year().min(today.year() - 1);
    let page = SummaryPage {
        chrome: Chrome::new(&s, "reports"),
        month,
        year,
        years: (first.min(year)..=(today.year() + 1).max(year))
            .rev()
            .collect(),
        months: MONTHS
            .iter()
            .enumerate()
            .map(|(i, m)| (i as u32 + 1, *m))
            .collect(),
        total_hours: sum(|r| r.total_hours),
        overtime_hours: sum(|r| r.overtime_hours),
        rows: rows.iter().map(SummaryView::from).collect(),
        csv_href: format!(
            "/reports/summary.csv?{}",
            query_string(&[
                ("month", &format!("{month:02}")),
                ("year", &year.to_string())
            ])
        ),
        errors,
        period,
        closed,
        ended,
    };
    let status = if page.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    render_status(status, &page)
}

/// `GET /reports/summary.csv?month=&year=`: "Export CSV".
async fn csv(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Query(q): Query<MonthQuery>,
) -> Result<Response, PageError> {
    let (month, year) = month_year(&q, default_day(&app, &s, &q).await?).map_err(|e| {
        PageError::Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.get("month")
                .or(e.get("year"))
                .unwrap_or_default()
                .to_owned(),
        )
    })?;
    let chunks = clokio_bus::stream::summary_csv(&app.bus, s.org_id, year, month, None).await?;
    let mut res = Response::new(Body::from_stream(chunks));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        summary_csv_file_name(year, month)
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[derive(Deserialize)]
pub struct PeriodForm {
    #[serde(default)]
    month: String,
    #[serde(default)]
    year: String,
}

/// The month a close or reopen form names, and where to go back to.
fn period_of(f: &PeriodForm) -> Result<(u32, i32, String), PageError> {
    let q = MonthQuery {
        month: Some(f.month.clone()),
        year: Some(f.year.clone()),
    };
    let (month, year) = month_year(&q, chrono::Utc::now().date_naive()).map_err(|e| {
        PageError::Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.get("month")
                .or(e.get("year"))
                .unwrap_or_default()
                .to_owned(),
        )
    })?;
    let back = format!(
        "/reports/summary?{}",
        query_string(&[("month", &month.to_string()), ("year", &year.to_string())])
    );
    Ok((month, year, back))
}

/// `POST /reports/summary/close`: "Close month" (as `POST /api/v1/periods/{yyyy-mm}/close`).
async fn close(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Form(f): Form<PeriodForm>,
) -> Result<Response, PageError> {
    change(&app, &s, &f, true).await
}

/// `POST /reports/summary/reopen`.
async fn reopen(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Form(f): Form<PeriodForm>,
) -> Result<Response, PageError> {
    change(&app, &s, &f, false).await
}

async fn change(
    app: &App,
    s: &Session,
    f: &PeriodForm,
    close: bool,
) -> Result<Response, PageError> {
    let (month, year, back) = period_of(f)?;
    let req = PeriodChange {
        org_id: s.org_id,
        year,
        month,
        actor: super::corrections::actor(s),
    };
    let name = format!("{} {year}", MONTHS[month as usize - 1]);
    let done = if close {
        app.bus
            .call::<PeriodCloseOp>(&req)
            .await
            .map(|_| format!("{name} is closed for payroll: its figures no longer change."))
    } else {
        app.bus
            .call::<PeriodReopenOp>(&req)
            .await
            .map(|_| format!("{name} is open again."))
    };
    let message = match done {
        Ok(message) => message,
        // A refusal (open sessions, already closed, not over) is shown on the summary.
        Err(err)
            if matches!(
                err.code,
                clokio_bus::ErrorCode::Conflict | clokio_bus::ErrorCode::Unprocessable
            ) =>
        {
            err.message
        }
        Err(err) => return Err(err.into()),
    };
    Ok(super::done_with(app, s, &back, &message).await)
}

//! Leave: the leaves of a month, adding one (employee code, dates, type) and deleting one after a
//! confirmation. The same operations as `/api/v1/leaves`; leave days count in the summary.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono::Datelike;
use clokio_bus::ErrorCode;
use clokio_bus::ids::LeaveId;
use clokio_bus::ops::{
    Leave, LeaveCreate, LeaveCreateOp, LeaveDelete, LeaveDeleteOp, LeaveList, LeaveListOp,
    LeaveType,
};
use clokio_bus::types::EmployeeCode;
use serde::Deserialize;

use super::reports::{MONTHS, MonthQuery, default_day, month_year};
use super::{Chrome, opt, opt_date, query_string, render, render_status};
use crate::App;
use crate::error::{Errors, PageError, refusal};
use crate::session::Session;

pub fn pages() -> Router<App> {
    Router::new()
        .route("/leave", get(list))
        .route("/leave/{id}/delete", get(confirm))
}

pub fn actions() -> Router<App> {
    Router::new()
        .route("/leave", post(add))
        .route("/leave/{id}/delete", post(remove))
}

const TYPES: [&str; 4] = ["annual", "sick", "unpaid", "other"];

pub struct LeaveView {
    pub id: String,
    pub name: String,
    pub code: String,
    pub kind: &'static str,
    pub start: String,
    pub end: String,
}

impl From<&Leave> for LeaveView {
    fn from(l: &Leave) -> Self {
        Self {
            id: l.id.to_string(),
            name: l.employee_name.clone(),
            code: l.employee_code.to_string(),
            kind: l.kind.as_str(),
            start: l.start_date.to_string(),
            end: l.end_date.to_string(),
        }
    }
}

#[derive(Default, Deserialize)]
pub struct LeaveForm {
    #[serde(default)]
    nip: String,
    #[serde(default)]
    start_date: String,
    #[serde(default)]
    end_date: String,
    #[serde(default, rename = "type")]
    kind: String,
    month: Option<String>,
    year: Option<String>,
}

#[derive(Template)]
#[template(path = "leave.html")]
struct ListPage {
    chrome: Chrome,
    month: u32,
    year: i32,
    month_name: &'static str,
    months: Vec<(u32, &'static str)>,
    leaves: Vec<LeaveView>,
    types: [&'static str; 4],
    form: LeaveForm,
    errors: Errors,
    /// `month=MM&year=YYYY` of this page.
    here: String,
}

async fn list_page(
    app: &App,
    s: &Session,
    q: MonthQuery,
    form: LeaveForm,
    mut errors: Errors,
    mut status: StatusCode,
) -> Result<Response, PageError> {
    let today = default_day(app, s, &q).await?;
    let (month, year) = match month_year(&q, today) {
        Ok(my) => my,
        Err(e) => {
            errors = e;
            status = StatusCode::UNPROCESSABLE_ENTITY;
            (today.month(), today.year())
        }
    };
    let leaves = app
        .bus
        .call::<LeaveListOp>(&LeaveList {
            org_id: s.org_id,
            year,
            month,
        })
        .await?;
    render_status(
        status,
        &ListPage {
            chrome: Chrome::new(s, "leave"),
            month,
            year,
            month_name: MONTHS[month as usize - 1],
            months: MONTHS
                .iter()
                .enumerate()
                .map(|(i, m)| (i as u32 + 1, *m))
                .collect(),
            leaves: leaves.iter().map(LeaveView::from).collect(),
            types: TYPES,
            form,
            errors,
            here: query_string(&[("month", &month.to_string()), ("year", &year.to_string())]),
        },
    )
}

/// `GET /leave[?month=&year=]`.
async fn list(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Query(q): Query<MonthQuery>,
) -> Result<Response, PageError> {
    list_page(
        &app,
        &s,
        q,
        LeaveForm::default(),
        Errors::none(),
        StatusCode::OK,
    )
    .await
}

const FIELDS: &[&str] = &["nip", "start_date", "end_date", "type"];

fn parse(s: &Session, f: &LeaveForm) -> Result<LeaveCreate, Errors> {
    let code =
        opt(&f.nip).ok_or_else(|| Errors::none().field("nip", "The nip field is required"))?;
    let employee_code = EmployeeCode::parse(&code)
        .map_err(|_| Errors::none().field("nip", "Employee not found"))?;
    let start_date = opt_date("start_date", &f.start_date)?
        .ok_or_else(|| Errors::none().field("start_date", "The start_date field is required"))?;
    let end_date = opt_date("end_date", &f.end_date)?
        .ok_or_else(|| Errors::none().field("end_date", "The end_date field is required"))?;
    let kind = f
        .kind
        .parse::<LeaveType>()
        .map_err(|m| Errors::none().field("type", m))?;
    Ok(LeaveCreate {
        org_id: s.org_id,
        employee_code,
        start_date,
        end_date,
        kind,
        idempotency_key: None,
    })
}

/// `POST /leave`.
async fn add(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Form(f): Form<LeaveForm>,
) -> Result<Response, PageError> {
    let q = MonthQuery {
        month: f.month.clone(),
        year: f.year.clone(),
    };
    let req = match parse(&s, &f) {
        Ok(req) => req,
        Err(errors) => {
            return list_page(&app, &s, q, f, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    match app.bus.call::<LeaveCreateOp>(&req).await {
        Ok(leave) => {
            let to = format!(
                "/leave?{}",
                query_string(&[
                    ("month", &leave.start_date.month().to_string()),
                    ("year", &leave.start_date.year().to_string())
                ])
            );
            let message = format!(
                "{} leave for {} from {} to {} recorded.",
                leave.kind.as_str(),
                leave.employee_name,
                leave.start_date,
                leave.end_date
            );
            Ok(super::done_with(&app, &s, &to, &capitalize(&message)).await)
        }
        // An unknown employee code is the field's mistake, not a missing page.
        Err(err) if err.code == ErrorCode::NotFound => {
            let errors = Errors::none().field("nip", err.message);
            list_page(&app, &s, q, f, errors, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(err) => {
            let (status, errors) = refusal(err, FIELDS)?;
            list_page(&app, &s, q, f, errors, status).await
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn leave_id(id: &str) -> Result<LeaveId, PageError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(LeaveId::new)
        .ok_or(PageError::NotFound)
}

#[derive(Template)]
#[template(path = "leave_delete.html")]
struct ConfirmPage {
    chrome: Chrome,
    leave: LeaveView,
    here: String,
}

/// `GET /leave/{id}/delete?month=&year=`: the leave is looked up in that month's list.
async fn confirm(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<MonthQuery>,
) -> Result<Response, PageError> {
    let id = leave_id(&id)?;
    let (month, year) =
        month_year(&q, default_day(&app, &s, &q).await?).map_err(|_| PageError::NotFound)?;
    let leaves = app
        .bus
        .call::<LeaveListOp>(&LeaveList {
            org_id: s.org_id,
            year,
            month,
        })
        .await?;
    let leave = leaves
        .iter()
        .find(|l| l.id == id)
        .ok_or(PageError::NotFound)?;
    render(&ConfirmPage {
        chrome: Chrome::new(&s, "leave"),
        leave: leave.into(),
        here: query_string(&[("month", &month.to_string()), ("year", &year.to_string())]),
    })
}

#[derive(Deserialize)]
pub struct BackForm {
    back: Option<String>,
}

/// `POST /leave/{id}/delete`.
async fn remove(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<BackForm>,
) -> Result<Response, PageError> {
    let leave = app
        .bus
        .call::<LeaveDeleteOp>(&LeaveDelete {
            org_id: s.org_id,
            id: leave_id(&id)?,
            idempotency_key: None,
        })
        .await?;
    let back = f
        .back
        .filter(|b| {
            b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"=&".contains(&c))
        })
        .map_or_else(|| "/leave".to_owned(), |b| format!("/leave?{b}"));
    let message = format!(
        "The leave of {} from {} to {} was deleted.",
        leave.employee_name, leave.start_date, leave.end_date
    );
    Ok(super::done_with(&app, &s, &back, &message).await)
}

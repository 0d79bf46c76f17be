//! Employees: a paged list with search and a status filter (an org of 10,000 renders one page),
//! the create form with the product document's fields (a generated password shown once), and
//! activate/deactivate. The same operations as `/api/v1/employees`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use clokio_bus::ops::{
    Employee, EmployeeCreate, EmployeeCreateOp, EmployeePageOp, EmployeePageQuery,
    EmployeeSetStatus, EmployeeSetStatusOp, LocationListOp, OrgRef,
};
use clokio_bus::types::{Email, EmployeeCode, EmployeeStatus};
use serde::Deserialize;

use super::{Chrome, Pager, opt, opt_date, page_number, query_string, render_status};
use crate::App;
use crate::error::{Errors, PageError, refusal};
use crate::security::local_target;
use crate::session::Session;

pub fn pages() -> Router<App> {
    Router::new()
        .route("/employees", get(list))
        .route("/employees/new", get(new))
}

pub fn actions() -> Router<App> {
    Router::new()
        .route("/employees", post(create))
        .route("/employees/{code}/status", post(set_status))
}

/// Employees per page.
pub const PER_PAGE: u32 = 50;

#[derive(Template)]
#[template(path = "employees.html")]
struct ListPage {
    chrome: Chrome,
    employees: Vec<Employee>,
    search: String,
    status: String,
    pager: Pager,
    /// This page's own address, to come back to after a status change.
    here: String,
    errors: Errors,
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    status: Option<String>,
    page: Option<String>,
}

/// `GET /employees[?q=&status=&page=]`.
async fn list(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let search = q.q.as_deref().map(str::trim).unwrap_or_default().to_owned();
    let status = q
        .status
        .as_deref()
        .and_then(|s| s.parse::<EmployeeStatus>().ok());
    let page = page_number(q.page.as_deref());
    let asked = app
        .bus
        .call::<EmployeePageOp>(&EmployeePageQuery {
            org_id: s.org_id,
            status,
            search: (!search.is_empty()).then(|| search.clone()),
            page,
            per_page: PER_PAGE,
        })
        .await;
    // A search the service refuses (too long) is said beside the search field.
    let (found, errors, code) = match asked {
        Ok(found) => (found, Errors::none(), axum::http::StatusCode::OK),
        Err(err) => {
            let (code, errors) = refusal(err, &["search"])?;
            let none = clokio_bus::ops::EmployeePage {
                employees: Vec::new(),
                page,
                per_page: PER_PAGE,
                total: 0,
            };
            (none, errors, code)
        }
    };
    let status = status.map(|s| s.as_str()).unwrap_or_default().to_owned();
    let base = query_string(&[("q", &search), ("status", &status)]);
    let here = if page > 1 || !base.is_empty() {
        format!(
            "/employees?{}",
            query_string(&[
                ("q", &search),
                ("status", &status),
                ("page", &page.to_string())
            ])
        )
    } else {
        "/employees".to_owned()
    };
    render_status(
        code,
        &ListPage {
            chrome: Chrome::new(&s, "employees"),
            employees: found.employees,
            pager: Pager::new(page, PER_PAGE, found.total, base),
            search,
            status,
            here,
            errors,
        },
    )
}

#[derive(Default, Deserialize)]
pub struct EmployeeForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    position: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    employee_code: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    birthdate: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    hire_date: String,
}

const FIELDS: &[&str] = &[
    "name",
    "email",
    "location",
    "phone",
    "position",
    "department",
    "employee_code",
    "password",
    "birthdate",
    "address",
    "hire_date",
];

#[derive(Template)]
#[template(path = "employee_new.html")]
struct NewPage {
    chrome: Chrome,
    form: EmployeeForm,
    locations: Vec<String>,
    errors: Errors,
}

async fn new_page(
    app: &App,
    s: &Session,
    form: EmployeeForm,
    errors: Errors,
    status: axum::http::StatusCode,
) -> Result<Response, PageError> {
    let locations = app
        .bus
        .call::<LocationListOp>(&OrgRef { org_id: s.org_id })
        .await?
        .into_iter()
        .map(|l| l.name)
        .collect();
    render_status(
        status,
        &NewPage {
            chrome: Chrome::new(s, "employees"),
            form,
            locations,
            errors,
        },
    )
}

/// `GET /employees/new`.
async fn new(
    State(app): State<App>,
    Extension(s): Extension<Session>,
) -> Result<Response, PageError> {
    new_page(
        &app,
        &s,
        EmployeeForm::default(),
        Errors::none(),
        axum::http::StatusCode::OK,
    )
    .await
}

fn parse(s: &Session, f: &EmployeeForm) -> Result<EmployeeCreate, Errors> {
    let name =
        opt(&f.name).ok_or_else(|| Errors::none().field("name", "The name field is required"))?;
    let email = opt(&f.email)
        .ok_or_else(|| Errors::none().field("email", "The email field is required"))?;
    let email = Email::parse(&email).map_err(|m| Errors::none().field("email", m))?;
    let location = opt(&f.location)
        .ok_or_else(|| Errors::none().field("location", "The location field is required"))?;
    let employee_code = opt(&f.employee_code)
        .map(|c| EmployeeCode::parse(&c))
        .transpose()
        .map_err(|m| Errors::none().field("employee_code", m))?;
    Ok(EmployeeCreate {
        org_id: s.org_id,
        name,
        email,
        location,
        phone: opt(&f.phone),
        position: opt(&f.position),
        department: opt(&f.department),
        employee_code,
        password: (!f.password.is_empty()).then(|| f.password.clone()),
        birthdate: opt_date("birthdate", &f.birthdate)?,
        address: opt(&f.address),
        hire_date: opt_date("hire_date", &f.hire_date)?,
    })
}

/// `POST /employees`.
async fn create(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Form(f): Form<EmployeeForm>,
) -> Result<Response, PageError> {
    let unprocessable = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    let req = match parse(&s, &f) {
        Ok(req) => req,
        Err(errors) => return new_page(&app, &s, f, errors, unprocessable).await,
    };
    match app.slow_bus.call::<EmployeeCreateOp>(&req).await {
        Ok(created) => {
            let e = &created.employee;
            let message = format!(
                "{} was added with employee code {}.",
                e.name, e.employee_code
            );
            match &created.password {
                Some(pw) => {
                    app.sessions
                        .reveal(&s, message, "Password", &e.name, pw)
                        .await
                        .map_err(|_| PageError::Unavailable)?;
                    Ok(super::done("/employees"))
                }
                None => Ok(super::done_with(&app, &s, "/employees", &message).await),
            }
        }
        Err(err) => {
            let (status, errors) = refusal(err, FIELDS)?;
            let f = EmployeeForm {
                password: String::new(),
                ..f
            };
            new_page(&app, &s, f, errors, status).await
        }
    }
}

#[derive(Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    status: String,
    back: Option<String>,
}

/// `POST /employees/{code}/status`: activate or deactivate.
async fn set_status(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(code): Path<String>,
    Form(f): Form<StatusForm>,
) -> Result<Response, PageError> {
    let employee_code = EmployeeCode::parse(&code).map_err(|_| PageError::NotFound)?;
    let status = f
        .status
        .parse::<EmployeeStatus>()
        .map_err(|m| PageError::Refused(axum::http::StatusCode::UNPROCESSABLE_ENTITY, m))?;
    let e = app
        .bus
        .call::<EmployeeSetStatusOp>(&EmployeeSetStatus {
            org_id: s.org_id,
            employee_code,
            status,
        })
        .await?;
    let message = match e.status {
        EmployeeStatus::Active => format!("{} is active again.", e.name),
        EmployeeStatus::Inactive => format!("{} is inactive and can no longer clock in.", e.name),
    };
    let back = local_target(f.back.as_deref());
    let back = if back.starts_with("/employees") {
        back
    } else {
        "/employees".to_owned()
    };
    Ok(super::done_with(&app, &s, &back, &message).await)
}

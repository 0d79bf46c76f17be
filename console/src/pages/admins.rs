//! Admin > Users: the organization's admins, adding one (a one-time password shown once, to be
//! changed at the first sign-in) and taking the role away, after a confirmation. The last admin
//! stays. A removed admin's sessions end at once on this console and within `admin_check` on any
//! other replica.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use clokio_bus::ids::EmployeeId;
use clokio_bus::ops::{
    Admin, AdminCreate, AdminCreateOp, AdminListOp, AdminRef, AdminRemoveOp, OrgRef,
};
use clokio_bus::types::Email;
use serde::Deserialize;

use super::{Chrome, opt, render, render_status, utc};
use crate::App;
use crate::error::{Errors, PageError, refusal};
use crate::session::Session;

pub fn pages() -> Router<App> {
    Router::new()
        .route("/admin/users", get(list))
        .route("/admin/users/{id}/remove", get(confirm))
}

pub fn actions() -> Router<App> {
    Router::new()
        .route("/admin/users", post(add))
        .route("/admin/users/{id}/remove", post(remove))
}

pub struct AdminView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub code: String,
    pub active: bool,
    pub must_change: bool,
    pub since: String,
    pub me: bool,
}

impl AdminView {
    fn of(a: &Admin, s: &Session) -> Self {
        Self {
            id: a.employee_id.to_string(),
            name: a.name.clone(),
            email: a.email.to_string(),
            code: a.employee_code.to_string(),
            active: a.status == clokio_bus::types::EmployeeStatus::Active,
            must_change: a.must_change_password,
            since: utc(a.created_at),
            me: a.employee_id == s.admin_id,
        }
    }
}

#[derive(Default, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
}

#[derive(Template)]
#[template(path = "admins.html")]
struct ListPage {
    chrome: Chrome,
    admins: Vec<AdminView>,
    form: AddForm,
    errors: Errors,
}

async fn list_page(
    app: &App,
    s: &Session,
    form: AddForm,
    errors: Errors,
    status: StatusCode,
) -> Result<Response, PageError> {
    let admins = app
        .bus
        .call::<AdminListOp>(&OrgRef { org_id: s.org_id })
        .await?;
    render_status(
        status,
        &ListPage {
            chrome: Chrome::new(s, "admin"),
            admins: admins.iter().map(|a| AdminView::of(a, s)).collect(),
            form,
            errors,
        },
    )
}

async fn list(
    State(app): State<App>,
    Extension(s): Extension<Session>,
) -> Result<Response, PageError> {
    list_page(&app, &s, AddForm::default(), Errors::none(), StatusCode::OK).await
}

/// `POST /admin/users`: the employee with this email becomes an admin, or a new employee is.
async fn add(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Form(f): Form<AddForm>,
) -> Result<Response, PageError> {
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let Some(name) = opt(&f.name) else {
        let errors = Errors::none().field("name", "The name field is required");
        return list_page(&app, &s, f, errors, unprocessable).await;
    };
    let email = match opt(&f.email).map(|e| Email::parse(&e)) {
        Some(Ok(email)) => email,
        Some(Err(message)) => {
            return list_page(
                &app,
                &s,
                f,
                Errors::none().field("email", message),
                unprocessable,
            )
            .await;
        }
        None => {
            let errors = Errors::none().field("email", "The email field is required");
            return list_page(&app, &s, f, errors, unprocessable).await;
        }
    };
    let req = AdminCreate {
        org_id: s.org_id,
        email,
        name,
        password: None,
        location: None,
    };
    match app.slow_bus.call::<AdminCreateOp>(&req).await {
        Ok(created) => {
            let a = &created.admin;
            let message = if created.promoted {
                format!("{} <{}> is now an admin.", a.name, a.email)
            } else {
                format!("{} <{}> was added as an admin.", a.name, a.email)
            };
            match &created.password {
                Some(pw) => {
                    app.sessions
                        .reveal(&s, message, "One-time password", &a.name, pw)
                        .await
                        .map_err(|_| PageError::Unavailable)?;
                    Ok(super::done("/admin/users"))
                }
                None => Ok(super::done_with(&app, &s, "/admin/users", &message).await),
            }
        }
        Err(err) => {
            let (status, errors) = refusal(err, &["name", "email"])?;
            list_page(&app, &s, f, errors, status).await
        }
    }
}

fn admin_id(id: &str) -> Result<EmployeeId, PageError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(EmployeeId::new)
        .ok_or(PageError::NotFound)
}

#[derive(Template)]
#[template(path = "admin_remove.html")]
struct ConfirmPage {
    chrome: Chrome,
    admin: AdminView,
}

async fn confirm(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let admin = app
        .bus
        .call::<clokio_bus::ops::AdminGetOp>(&AdminRef {
            org_id: s.org_id,
            employee_id: admin_id(&id)?,
        })
        .await?;
    render(&ConfirmPage {
        chrome: Chrome::new(&s, "admin"),
        admin: AdminView::of(&admin, &s),
    })
}

/// `POST /admin/users/{id}/remove`: the role goes, the employee stays; their sessions end.
async fn remove(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = admin_id(&id)?;
    let admin = app
        .bus
        .call::<AdminRemoveOp>(&AdminRef {
            org_id: s.org_id,
            employee_id: id,
        })
        .await?;
    app.admin_changed(s.org_id, id);
    if id == s.admin_id {
        let _ = app.sessions.destroy(&s.key).await;
        return Ok(Redirect::to("/sign-in?signed_out=1").into_response());
    }
    let message = format!("{} is no longer an admin.", admin.name);
    Ok(super::done_with(&app, &s, "/admin/users", &message).await)
}

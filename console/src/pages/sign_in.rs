//! Signing in and out, and the admin's own password. Sign-in forms carry a token of a short-lived
//! cookie of their own (there is no session yet to carry one) and must come from the console's
//! origin. An unknown email and a wrong password get the same message; failures are throttled
//! per account and per client address. Someone who is an admin of several organizations chooses
//! one after the password matched.

use std::net::SocketAddr;
use std::time::Duration;

use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use clokio_bus::ErrorCode;
use clokio_bus::key::KeyHash;
use clokio_bus::ops::{AdminSetPassword, AdminSetPasswordOp, AdminSignIn, AdminSignInOp, SignedIn};
use clokio_bus::types::Email;
use serde::Deserialize;

use super::{Chrome, render, render_status};
use crate::App;
use crate::error::{Errors, PageError, refusal};
use crate::security::{client_address, local_target, same_origin};
use crate::session::{self, Session, constant_time_eq, random_token};
use crate::throttle::{Attempt, wait_text};

pub fn public() -> Router<App> {
    Router::new()
        .route("/sign-in", get(form).post(submit))
        .route("/sign-in/choose", post(choose))
}

pub fn pages() -> Router<App> {
    Router::new().route("/account/password", get(password_form))
}

pub fn actions() -> Router<App> {
    Router::new()
        .route("/sign-out", post(sign_out))
        .route("/account/password", post(change_password))
}

/// How long a sign-in form stays usable.
const SIGN_IN_FORM_FOR: Duration = Duration::from_secs(3600);
/// How long the organization choice waits after the password matched.
const CHOICE_FOR: Duration = Duration::from_secs(300);

fn signin_cookie(app: &App) -> &'static str {
    if app.config.https() {
        "__Host-clokio_signin"
    } else {
        "clokio_signin"
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    css: &'static str,
    icon: &'static str,
    token: &'a str,
    next: &'a str,
    email: &'a str,
    notice: Option<&'a str>,
    throttled: Option<String>,
    errors: Errors,
}

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

/// `GET /sign-in`.
async fn form(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<SignInQuery>,
) -> Result<Response, PageError> {
    let next = local_target(q.next.as_deref());
    if let Some(id) = session::cookie(&headers, app.cookie)
        && let Ok(Some(_)) = app.sessions.load(id, false).await
    {
        return Ok(Redirect::to(&next).into_response());
    }
    let token = session::cookie(&headers, signin_cookie(&app))
        .filter(|t| t.len() == 43)
        .map_or_else(random_token, str::to_owned);
    let page = SignInPage {
        css: crate::assets::css(),
        icon: crate::assets::icon(),
        token: &token,
        next: &next,
        email: "",
        notice: q.signed_out.is_some().then_some("You have signed out."),
        throttled: None,
        errors: Errors::none(),
    };
    let mut res = render(&page)?;
    set_signin_cookie(&app, &mut res, &token);
    crate::no_store(&mut res);
    Ok(res)
}

fn set_signin_cookie(app: &App, res: &mut Response, token: &str) {
    let cookie = session::set_cookie(
        signin_cookie(app),
        token,
        app.config.https(),
        Some(SIGN_IN_FORM_FOR),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The sign-in form's token matches its cookie, and the form came from here.
fn form_is_ours(app: &App, headers: &HeaderMap, token: &str) -> bool {
    same_origin(&app.config, headers)
        && session::cookie(headers, signin_cookie(app)).is_some_and(|c| constant_time_eq(c, token))
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `POST /sign-in`.
async fn submit(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Result<Response, PageError> {
    if !form_is_ours(&app, &headers, &f.csrf) {
        return Err(PageError::Forbidden);
    }
    let next = local_target(f.next.as_deref());
    let email_text = f.email.trim();
    let again = |status: StatusCode, errors: Errors, throttled: Option<String>| {
        let page = SignInPage {
            css: crate::assets::css(),
            icon: crate::assets::icon(),
            token: &f.csrf,
            next: &next,
            email: email_text,
            notice: None,
            throttled,
            errors,
        };
        render_status(status, &page).map(|mut res| {
            crate::no_store(&mut res);
            res
        })
    };
    let email = match Email::parse(email_text) {
        Ok(email) => email,
        Err(_) if email_text.is_empty() => {
            return again(
                StatusCode::UNPROCESSABLE_ENTITY,
                Errors::none().field("email", "The email field is required"),
                None,
            );
        }
        Err(message) => {
            return again(
                StatusCode::UNPROCESSABLE_ENTITY,
                Errors::none().field("email", message),
                None,
            );
        }
    };
    if f.password.is_empty() {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            Errors::none().field("password", "The password field is required"),
            None,
        );
    }
    let address = client_address(&app.config, &headers, Some(peer));
    let wait_if_wrong = match app.throttle.attempt(email.as_str(), &address).await {
        Ok(Attempt::Wait(wait)) => {
            metrics::counter!("clokio_console_sign_ins_total", "outcome" => "throttled")
                .increment(1);
            return again(
                StatusCode::TOO_MANY_REQUESTS,
                Errors::none(),
                Some(wait_text(wait)),
            );
        }
        Ok(Attempt::Go { wait_if_wrong }) => wait_if_wrong,
        Err(err) => {
            tracing::warn!(%err, "sign-in throttle unreachable");
            return Err(PageError::Unavailable);
        }
    };
    let req = AdminSignIn {
        email: email.clone(),
        password: f.password.clone(),
    };
    let matches = match app.slow_bus.call::<AdminSignInOp>(&req).await {
        Ok(matches) if !matches.is_empty() => matches,
        Ok(_) => return Err(PageError::Internal),
        Err(err) if err.code == ErrorCode::Unauthorized => {
            metrics::counter!("clokio_console_sign_ins_total", "outcome" => "failed").increment(1);
            return match wait_if_wrong {
                Some(wait) => again(
                    StatusCode::TOO_MANY_REQUESTS,
                    Errors::none(),
                    Some(wait_text(wait)),
                ),
                None => again(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Errors::general(err.message),
                    None,
                ),
            };
        }
        Err(err) => return Err(err.into()),
    };
    if let Err(err) = app.throttle.succeeded(email.as_str(), &address).await {
        tracing::warn!(%err, "sign-in throttle not reset");
    }
    metrics::counter!("clokio_console_sign_ins_total", "outcome" => "succeeded").increment(1);
    match matches.as_slice() {
        [one] => start(&app, one, &next).await,
        _ => offer_choice(&app, &f.csrf, matches, &next).await,
    }
}

/// Starts a session for `admin` and goes on (to the password page first after a one-time
/// password).
async fn start(app: &App, admin: &SignedIn, next: &str) -> Result<Response, PageError> {
    let id = app.sessions.create(admin).await.map_err(|err| {
        tracing::warn!(%err, "session not stored");
        PageError::Unavailable
    })?;
    let target = if admin.admin.must_change_password {
        "/account/password"
    } else {
        next
    };
    let mut res = Redirect::to(target).into_response();
    for cookie in [
        session::set_cookie(
            app.cookie,
            &id,
            app.config.https(),
            Some(app.config.session_max),
        ),
        session::set_cookie(signin_cookie(app), "", app.config.https(), None),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    crate::no_store(&mut res);
    Ok(res)
}

fn choice_key(app: &App, choice: &str) -> String {
    format!(
        "{}:console:choice:{}",
        app.config.bus.subjects.prefix(),
        KeyHash::of(choice).as_str()
    )
}

#[derive(Template)]
#[template(path = "choose_org.html")]
struct ChoosePage<'a> {
    css: &'static str,
    icon: &'static str,
    token: &'a str,
    choice: &'a str,
    next: &'a str,
    orgs: Vec<(String, String)>,
}

async fn offer_choice(
    app: &App,
    token: &str,
    matches: Vec<SignedIn>,
    next: &str,
) -> Result<Response, PageError> {
    let choice = random_token();
    let orgs = matches
        .iter()
        .map(|m| (m.org_id.to_string(), m.org_name.clone()))
        .collect();
    let stored = serde_json::to_string(&matches).map_err(|_| PageError::Internal)?;
    let mut conn = app
        .redis
        .connection()
        .await
        .map_err(|_| PageError::Unavailable)?;
    redis::cmd("SET")
        .arg(choice_key(app, &choice))
        .arg(stored)
        .arg("PX")
        .arg(CHOICE_FOR.as_millis() as u64)
        .query_async::<()>(&mut conn)
        .await
        .map_err(|_| PageError::Unavailable)?;
    let mut res = render(&ChoosePage {
        css: crate::assets::css(),
        icon: crate::assets::icon(),
        token,
        choice: &choice,
        next,
        orgs,
    })?;
    crate::no_store(&mut res);
    Ok(res)
}

#[derive(Deserialize)]
pub struct ChooseForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    choice: String,
    #[serde(default)]
    org: String,
    next: Option<String>,
}

/// `POST /sign-in/choose`: the organization, once, within a few minutes of the password.
async fn choose(
    State(app): State<App>,
    headers: HeaderMap,
    Form(f): Form<ChooseForm>,
) -> Result<Response, PageError> {
    if !form_is_ours(&app, &headers, &f.csrf) {
        return Err(PageError::Forbidden);
    }
    let mut conn = app
        .redis
        .connection()
        .await
        .map_err(|_| PageError::Unavailable)?;
    let stored: Option<String> = redis::cmd("GETDEL")
        .arg(choice_key(&app, &f.choice))
        .query_async(&mut conn)
        .await
        .map_err(|_| PageError::Unavailable)?;
    let matches: Vec<SignedIn> = stored
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    match matches.iter().find(|m| m.org_id.to_string() == f.org) {
        Some(admin) => start(&app, admin, &local_target(f.next.as_deref())).await,
        // Expired, used already, or not one of the offered organizations: sign in again.
        None => Ok(Redirect::to("/sign-in").into_response()),
    }
}

/// `POST /sign-out`: the session ends here and everywhere it was used.
async fn sign_out(
    State(app): State<App>,
    Extension(s): Extension<Session>,
) -> Result<Response, PageError> {
    app.sessions
        .destroy(&s.key)
        .await
        .map_err(|_| PageError::Unavailable)?;
    let mut res = Redirect::to("/sign-in?signed_out=1").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
        app.cookie,
        "",
        app.config.https(),
        None,
    )) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    chrome: Chrome,
    must_change: bool,
    email: String,
    errors: Errors,
}

async fn password_form(Extension(s): Extension<Session>) -> Result<Response, PageError> {
    render(&PasswordPage {
        chrome: Chrome::new(&s, ""),
        must_change: s.must_change_password,
        email: s.email.clone(),
        errors: Errors::none(),
    })
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

const PASSWORD_FIELDS: &[&str] = &["current_password", "new_password", "confirm_password"];

/// `POST /account/password`: this session stays, every other session of the admin ends.
async fn change_password(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Form(f): Form<PasswordForm>,
) -> Result<Response, PageError> {
    let again = |status, errors| {
        render_status(
            status,
            &PasswordPage {
                chrome: Chrome::new(&s, ""),
                must_change: s.must_change_password,
                email: s.email.clone(),
                errors,
            },
        )
    };
    if f.new_password != f.confirm_password {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            Errors::none().field(
                "confirm_password",
                "The confirm_password field must match the new password",
            ),
        );
    }
    let req = AdminSetPassword {
        org_id: s.org_id,
        employee_id: s.admin_id,
        current_password: f.current_password,
        new_password: f.new_password,
    };
    match app.slow_bus.call::<AdminSetPasswordOp>(&req).await {
        Ok(admin) => {
            app.sessions
                .credentials_changed(&s, admin.credentials_version)
                .await
                .map_err(|_| PageError::Unavailable)?;
            app.admin_changed(s.org_id, s.admin_id);
            Ok(super::done_with(
                &app,
                &s,
                "/attendance/today",
                "Your password has been changed. Your other sessions have ended.",
            )
            .await)
        }
        Err(err) => {
            let (status, errors) = refusal(err, PASSWORD_FIELDS)?;
            again(status, errors)
        }
    }
}

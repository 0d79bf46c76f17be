//! Admin > API Keys: the organization's keys (name, hint, scopes, expiry, created, last used),
//! "Create New Key" with a preset (full, kiosk, read-only) and an optional last day (the key shown
//! once, with a copy button and the product document's warning) and revoke, after a confirmation.
//! Revocation reaches every gateway within a second, as through the API.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono::{DateTime, NaiveDate, Utc};
use clokio_bus::ids::ApiKeyId;
use clokio_bus::ops::{
    ApiKeyInfo, KeyCreate, KeyCreateOp, KeyListOp, KeyRevoke, KeyRevokeOp, OrgGetOp, OrgRef,
};
use clokio_bus::scope::Preset;
use serde::Deserialize;

use super::{Chrome, opt, opt_date, render, render_status, utc};
use crate::App;
use crate::error::{Errors, PageError, refusal};
use crate::session::Session;

pub fn pages() -> Router<App> {
    Router::new()
        .route("/api-keys", get(list))
        .route("/api-keys/{id}/revoke", get(confirm))
}

pub fn actions() -> Router<App> {
    Router::new()
        .route("/api-keys", post(create))
        .route("/api-keys/{id}/revoke", post(revoke))
}

pub struct KeyView {
    pub id: String,
    pub name: String,
    pub hint: String,
    /// The preset's label, or the scopes' names.
    pub access: String,
    /// Empty: never.
    pub expires: String,
    pub expired: bool,
    pub created: String,
    pub last_used: String,
    pub revoked: String,
}

impl From<&ApiKeyInfo> for KeyView {
    fn from(k: &ApiKeyInfo) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name.clone(),
            hint: k.hint.clone(),
            access: match k.scopes.preset() {
                Some(preset) => preset_label(preset).to_owned(),
                None => k.scopes.names().join(", "),
            },
            expires: k.expires_at.map(utc).unwrap_or_default(),
            expired: k.expires_at.is_some_and(|at| at <= Utc::now()),
            created: utc(k.created_at),
            last_used: k.last_used_at.map(utc).unwrap_or_default(),
            revoked: k.revoked_at.map(utc).unwrap_or_default(),
        }
    }
}

fn preset_label(preset: Preset) -> &'static str {
    match preset {
        Preset::Full => "Full access",
        Preset::Kiosk => "Kiosk: clock in and out only",
        Preset::ReadOnly => "Read-only",
    }
}

/// A preset offered by the form: value, label, what it allows, selected.
pub struct PresetOption {
    pub value: &'static str,
    pub label: &'static str,
    pub scopes: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct ListPage {
    chrome: Chrome,
    keys: Vec<KeyView>,
    form: CreateForm,
    presets: Vec<PresetOption>,
    errors: Errors,
}

async fn list_page(
    app: &App,
    s: &Session,
    form: CreateForm,
    errors: Errors,
    status: StatusCode,
) -> Result<Response, PageError> {
    let keys = app
        .bus
        .call::<KeyListOp>(&OrgRef { org_id: s.org_id })
        .await?;
    render_status(
        status,
        &ListPage {
            chrome: Chrome::new(s, "admin"),
            keys: keys.iter().rev().map(KeyView::from).collect(),
            presets: Preset::ALL
                .iter()
                .map(|p| PresetOption {
                    value: p.as_str(),
                    label: preset_label(*p),
                    scopes: p.scopes().names().join(", "),
                    selected: form.preset == p.as_str()
                        || (form.preset.is_empty() && *p == Preset::Full),
                })
                .collect(),
            form,
            errors,
        },
    )
}

/// `GET /api-keys`: newest first.
async fn list(
    State(app): State<App>,
    Extension(s): Extension<Session>,
) -> Result<Response, PageError> {
    list_page(
        &app,
        &s,
        CreateForm::default(),
        Errors::none(),
        StatusCode::OK,
    )
    .await
}

#[derive(Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    preset: String,
    /// The last day the key works (in the organization's time zone); empty: no expiry.
    #[serde(default)]
    last_day: String,
}

/// The end of `day` in the organization's time zone: when a key whose last day it is expires.
async fn end_of(app: &App, s: &Session, day: NaiveDate) -> Result<DateTime<Utc>, PageError> {
    let org = app
        .bus
        .call::<OrgGetOp>(&OrgRef { org_id: s.org_id })
        .await?;
    let next = day.succ_opt().ok_or(PageError::NotFound)?;
    Ok(org.timezone.start_of(next))
}

/// The form again, with `message` beside `field`.
async fn refuse(
    app: &App,
    s: &Session,
    f: CreateForm,
    field: &'static str,
    message: &str,
) -> Result<Response, PageError> {
    let errors = Errors::none().field(field, message);
    list_page(app, s, f, errors, StatusCode::UNPROCESSABLE_ENTITY).await
}

/// `POST /api-keys`: "Create New Key".
async fn create(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Form(f): Form<CreateForm>,
) -> Result<Response, PageError> {
    let Some(name) = opt(&f.name) else {
        return refuse(&app, &s, f, "name", "The name field is required").await;
    };
    let Some(preset) =
        Preset::parse(f.preset.trim()).or(opt(&f.preset).is_none().then_some(Preset::Full))
    else {
        return refuse(
            &app,
            &s,
            f,
            "preset",
            "Choose full access, kiosk or read-only",
        )
        .await;
    };
    let last_day = match opt_date("last_day", &f.last_day) {
        Ok(day) => day,
        Err(errors) => {
            return list_page(&app, &s, f, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let expires_at = match last_day {
        Some(day) => {
            let at = end_of(&app, &s, day).await?;
            if at <= Utc::now() {
                return refuse(
                    &app,
                    &s,
                    f,
                    "last_day",
                    "The last day must be today or later",
                )
                .await;
            }
            Some(at)
        }
        None => None,
    };
    match app
        .bus
        .call::<KeyCreateOp>(&KeyCreate {
            org_id: s.org_id,
            name,
            scopes: preset.scopes(),
            expires_at,
        })
        .await
    {
        Ok(key) => {
            app.sessions
                .reveal(
                    &s,
                    format!("API key “{}” created.", key.name),
                    "API key",
                    &key.name,
                    &key.key,
                )
                .await
                .map_err(|_| PageError::Unavailable)?;
            Ok(super::done("/api-keys"))
        }
        Err(err) => {
            let (status, errors) = refusal(err, &["name", "last_day"])?;
            list_page(&app, &s, f, errors, status).await
        }
    }
}

#[derive(Template)]
#[template(path = "api_key_revoke.html")]
struct ConfirmPage {
    chrome: Chrome,
    key: KeyView,
}

fn key_id(id: &str) -> Result<ApiKeyId, PageError> {
    id.parse().map_err(|_| PageError::NotFound)
}

/// `GET /api-keys/{id}/revoke`: are you sure?
async fn confirm(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = key_id(&id)?;
    let keys = app
        .bus
        .call::<KeyListOp>(&OrgRef { org_id: s.org_id })
        .await?;
    let key = keys
        .iter()
        .find(|k| k.id == id && k.revoked_at.is_none())
        .ok_or(PageError::NotFound)?;
    render(&ConfirmPage {
        chrome: Chrome::new(&s, "admin"),
        key: key.into(),
    })
}

/// `POST /api-keys/{id}/revoke`.
async fn revoke(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let key = app
        .bus
        .call::<KeyRevokeOp>(&KeyRevoke {
            org_id: s.org_id,
            key_id: key_id(&id)?,
        })
        .await?;
    let message = format!(
        "API key “{}” ({}) revoked. It stops working within a second.",
        key.name, key.hint
    );
    Ok(super::done_with(&app, &s, "/api-keys", &message).await)
}

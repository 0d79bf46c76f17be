//! Admin > API Keys: the organization's keys (name, hint, created, last used), "Create New Key"
//! (the key shown once, with a copy button and the product document's warning) and revoke, after
//! a confirmation. Revocation reaches every gateway within a second, as through the API.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use clokio_bus::ids::ApiKeyId;
use clokio_bus::ops::{
    ApiKeyInfo, KeyCreate, KeyCreateOp, KeyListOp, KeyRevoke, KeyRevokeOp, OrgRef,
};
use serde::Deserialize;

use super::{Chrome, opt, render, render_status, utc};
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
            created: utc(k.created_at),
            last_used: k.last_used_at.map(utc).unwrap_or_default(),
            revoked: k.revoked_at.map(utc).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct ListPage {
    chrome: Chrome,
    keys: Vec<KeyView>,
    name: String,
    errors: Errors,
}

async fn list_page(
    app: &App,
    s: &Session,
    name: String,
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
            name,
            errors,
        },
    )
}

/// `GET /api-keys`: newest first.
async fn list(
    State(app): State<App>,
    Extension(s): Extension<Session>,
) -> Result<Response, PageError> {
    list_page(&app, &s, String::new(), Errors::none(), StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
}

/// `POST /api-keys`: "Create New Key".
async fn create(
    State(app): State<App>,
    Extension(s): Extension<Session>,
    Form(f): Form<CreateForm>,
) -> Result<Response, PageError> {
    let Some(name) = opt(&f.name) else {
        return list_page(
            &app,
            &s,
            f.name,
            Errors::none().field("name", "The name field is required"),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    match app
        .bus
        .call::<KeyCreateOp>(&KeyCreate {
            org_id: s.org_id,
            name,
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
            let (status, errors) = refusal(err, &["name"])?;
            list_page(&app, &s, f.name, errors, status).await
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

//! `/api/v1/api-keys`: the organization manages its own keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get};
use axum::{Extension, Router};
use clokio_bus::ids::ApiKeyId;
use clokio_bus::ops::{
    ApiKeyInfo, CreatedApiKey, KeyCreate, KeyCreateOp, KeyListOp, KeyRevoke, KeyRevokeOp, OrgRef,
};
use utoipa::ToSchema;

use super::{RETRIEVED, forward};
use crate::auth::Auth;
use crate::body::Fields;
use crate::envelope::ApiError;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::{App, RequestId};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/api-keys", get(list).post(create))
        .route("/api/v1/api-keys/{id}", delete(revoke))
}

/// List the organization's API keys (hints only, never the secret).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "API keys",
    responses((status = 200, body = Envelope<Vec<ApiKeyInfo>>), (status = 401, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn list(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
) -> Result<Response, ApiError> {
    forward::<KeyListOp>(
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

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct KeyCreateBody {
    /// A descriptive name, e.g. "Payroll Integration".
    name: String,
}

/// Create an API key. The key is in this response only: store it now.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "API keys", request_body = KeyCreateBody,
    responses((status = 201, body = Envelope<CreatedApiKey>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn create(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    mut f: Fields,
) -> Result<Response, ApiError> {
    let name = f.required_str("name", 100)?;
    let req = KeyCreate {
        org_id: auth.org_id,
        name,
    };
    forward::<KeyCreateOp>(
        &app,
        &rid,
        &req,
        StatusCode::CREATED,
        "API key created successfully",
    )
    .await
}

/// Revoke an API key. It stops working on every gateway within a second.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "API keys",
    params(("id" = String, Path, format = Uuid, description = "The key's id")),
    responses((status = 200, body = Envelope<ApiKeyInfo>), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, description = "Already revoked", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn revoke(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key_id: ApiKeyId = id
        .parse()
        .map_err(|_| ApiError::not_found("API key not found"))?;
    let req = KeyRevoke {
        org_id: auth.org_id,
        key_id,
    };
    let res = forward::<KeyRevokeOp>(
        &app,
        &rid,
        &req,
        StatusCode::OK,
        "API key revoked successfully",
    )
    .await?;
    // This replica knows at once; the others learn from the revocation event.
    app.auth.evict_key(key_id);
    Ok(res)
}

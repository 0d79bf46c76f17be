//! `/api/v1/api-keys`: the organization manages its own keys.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get};
use axum::{Extension, Router};
use clokio_bus::ids::ApiKeyId;
use clokio_bus::ops::{
    ApiKeyInfo, CreatedApiKey, KeyCreate, KeyCreateOp, KeyListOp, KeyRevoke, KeyRevokeOp, OrgRef,
};
use clokio_bus::scope::{Preset, Scope, Scopes};
use utoipa::ToSchema;

use super::{RETRIEVED, forward};
use crate::auth::Auth;
use crate::envelope::ApiError;
use crate::openapi::{Envelope, ErrorEnvelope};
use crate::paging::{PageParams, forward_list};
use crate::request::{Body, Field, Instant, Params, Strings, Text, field, one_of, optional};
use crate::{App, RequestId};
use serde::Deserialize;
use serde_json::Value;
use utoipa::openapi::schema::ArrayBuilder;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/api-keys", get(list).post(create))
        .route("/api/v1/api-keys/{id}", delete(revoke))
}

/// List the organization's API keys (hints only, never the secret).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "API keys", params(PageParams),
    responses(
        (status = 200, description = "The list; a page of it with `page` or `per_page`", body = Envelope<Vec<ApiKeyInfo>>,
            headers(("X-Total-Count" = u64, description = "With a page: the whole list's length"),
                ("Link" = String, description = "With a page: RFC 8288 `first`, `prev`, `next` and `last`"))),
        (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn list(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    OriginalUri(uri): OriginalUri,
    Params(page): Params<PageParams>,
) -> Result<Response, ApiError> {
    forward_list::<KeyListOp>(
        &app,
        &rid,
        &OrgRef {
            org_id: auth.org_id,
        },
        page.page()?,
        &uri,
        RETRIEVED,
    )
    .await
}

#[derive(Deserialize, ToSchema)]
pub struct KeyCreateBody {
    /// A descriptive name, e.g. "Payroll Integration".
    #[schema(inline)]
    name: Text<100>,
    /// What the key may do. Give either this or `preset`; with neither the key gets every scope.
    /// A key can only grant scopes it holds itself.
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline, example = json!(["attendance:write"]))]
    scopes: Option<ScopeNames>,
    /// A named set: `full` (every scope, the default), `kiosk` (`attendance:write`),
    /// `read-only` (every `:read` scope).
    #[serde(default, deserialize_with = "optional")]
    #[schema(inline, example = "read-only")]
    preset: Option<PresetName>,
    /// When the key stops working (RFC 3339, in the future). Absent: it does not expire.
    #[serde(default, deserialize_with = "optional")]
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>, example = "2027-01-31T23:59:59Z")]
    expires_at: Option<Instant>,
}

/// The scopes a key is created with: each a scope's name.
pub struct ScopeNames(Vec<Scope>);

impl Field for ScopeNames {
    fn read(value: Value) -> Result<Option<Self>, String> {
        let Some(Strings(names)) = Strings::<{ Scope::ALL.len() * 2 }>::read(value)? else {
            return Ok(None);
        };
        names
            .iter()
            .map(|s| {
                Scope::parse(s).ok_or_else(|| {
                    format!(
                        "The scopes field has an unknown scope: {s}. Scopes are {}",
                        Scopes::FULL.names().join(", ")
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|scopes| Some(Self(scopes)))
    }
}
field!(
    ScopeNames,
    ArrayBuilder::new()
        .items(one_of(Scope::ALL.iter().map(|s| s.as_str())))
        .max_items(Some(Scope::ALL.len() * 2))
);

/// A named set of scopes.
pub struct PresetName(Preset);

impl Field for PresetName {
    fn read(value: Value) -> Result<Option<Self>, String> {
        let Some(Text(name)) = Text::<20>::read(value)? else {
            return Ok(None);
        };
        Preset::parse(&name)
            .map(|p| Some(Self(p)))
            .ok_or_else(|| "The preset field must be full, kiosk or read-only".to_owned())
    }
}
field!(PresetName, one_of(Preset::ALL.iter().map(|p| p.as_str())));

/// Create an API key. The key is in this response only: store it now.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "API keys", request_body = KeyCreateBody,
    responses((status = 201, body = Envelope<CreatedApiKey>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, description = "The key lacks keys:manage, or a scope it would grant", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope), (status = 504, body = ErrorEnvelope)),
    security(("api_key" = [])))]
pub async fn create(
    State(app): State<App>,
    Extension(auth): Extension<Auth>,
    Extension(rid): Extension<RequestId>,
    Body(body): Body<KeyCreateBody>,
) -> Result<Response, ApiError> {
    let listed = body.scopes.map(|s| s.0);
    let preset = body.preset.map(|p| p.0);
    let scopes = match (listed, preset) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("Give either scopes or preset, not both"));
        }
        (Some(listed), None) if listed.is_empty() => {
            return Err(ApiError::invalid(
                "The scopes field must name at least one scope",
            ));
        }
        (Some(listed), None) => Scopes::of(&listed),
        (None, Some(preset)) => preset.scopes(),
        (None, None) => Scopes::FULL,
    };
    if let Some(scope) = scopes.first_missing_from(auth.scopes) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            crate::scopes::refusal(scope),
        ));
    }
    let expires_at = body.expires_at.map(|at| at.0);
    if expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
        return Err(ApiError::invalid(
            "The expires_at field must be a time in the future",
        ));
    }
    let req = KeyCreate {
        org_id: auth.org_id,
        name: body.name.0,
        scopes,
        expires_at,
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

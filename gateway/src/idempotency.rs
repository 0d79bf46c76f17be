//! The `Idempotency-Key` header of the writes that take one: its check and its OpenAPI
//! description, in one place.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::envelope::ApiError;

/// The `Idempotency-Key` header, if sent: 1 to 255 visible ASCII characters, else a 422.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// Replays the first answer for a retry of the same request within 24 h
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = r"^[!-~]+$"
    )]
    pub key: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self { key: None });
        };
        value
            .to_str()
            .ok()
            .filter(|v| !v.is_empty() && v.len() <= 255 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(|v| Self {
                key: Some(v.to_owned()),
            })
            .ok_or_else(|| {
                ApiError::invalid(
                    "The Idempotency-Key header must be 1 to 255 visible ASCII characters",
                )
            })
    }
}

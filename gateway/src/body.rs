//! Request bodies: read with a size bound (413 beyond it) and parsed as a JSON object (400 when it
//! is not JSON, 422 when it is not an object). `crate::request` reads the object into the
//! endpoint's body type.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::envelope::ApiError;

/// The fields of a JSON object body.
#[derive(Debug, Clone)]
pub struct Fields(Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(1024 * 1024, |l| l.0);
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The request body is too large",
                )
            })?;
        Fields::parse(&bytes)
    }
}

/// The body size bound, set by the router from configuration.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

impl Fields {
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::invalid("The request body must be a JSON object")),
            Err(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "The request body is not valid JSON",
            )),
        }
    }

    /// Query parameters as string fields; the last of a name given twice counts.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(name, value)| (name, Value::String(value)))
                .collect(),
        )
    }

    /// The object, for [`Self::into_body`].
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Moves the members of the object `name` (when present) up beside the others, so a body may
    /// give them in the nested shape a resource is read in or flat. A member given both ways is
    /// refused.
    pub fn hoist(&mut self, name: &str) -> Result<(), ApiError> {
        let Some(inner) = self.optional_object(name)? else {
            return Ok(());
        };
        for (member, value) in inner.0 {
            if self.0.contains_key(&member) {
                return Err(ApiError::invalid(format!(
                    "The {member} field must be given either under {name} or at the top level, not both"
                )));
            }
            self.0.insert(member, value);
        }
        Ok(())
    }

    /// A nested object.
    fn optional_object(&mut self, name: &str) -> Result<Option<Fields>, ApiError> {
        match self.0.remove(name).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields(map))),
            Some(_) => Err(ApiError::invalid(format!(
                "The {name} field must be an object"
            ))),
        }
    }
}

pub fn required(name: &str) -> ApiError {
    ApiError::invalid(format!("The {name} field is required"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape_errors() {
        assert_eq!(
            Fields::parse(b"{").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            Fields::parse(b"[1]").unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert!(Fields::parse(b"  ").is_ok());
    }
}

//! The response envelope `{"status", "message", "data"}` on every response, errors included.
//! Service replies are spliced in as the bytes the service sent, never decoded and re-encoded.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use clokio_bus::BusError;
use serde::Serialize;

/// An error answer: a status and a client-safe message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Invalid API key")
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<BusError> for ApiError {
    fn from(err: BusError) -> Self {
        let status =
            StatusCode::from_u16(err.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self {
            status,
            message: err.message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(48 + self.message.len());
        body.extend_from_slice(br#"{"status":"error","message":"#);
        write_json_string(&mut body, &self.message);
        body.extend_from_slice(br#","data":null}"#);
        json_response(self.status, body)
    }
}

/// A success answer whose `data` is bytes of JSON a service produced.
pub fn raw(status: StatusCode, message: &str, data: &[u8]) -> Response {
    let mut body = Vec::with_capacity(48 + message.len() + data.len());
    body.extend_from_slice(br#"{"status":"success","message":"#);
    write_json_string(&mut body, message);
    body.extend_from_slice(br#","data":"#);
    body.extend_from_slice(data);
    body.push(b'}');
    json_response(status, body)
}

/// A success answer with a value the gateway itself produced.
pub fn success<T: Serialize>(status: StatusCode, message: &str, data: &T) -> Response {
    match serde_json::to_vec(data) {
        Ok(bytes) => raw(status, message, &bytes),
        Err(err) => {
            tracing::error!(%err, "unencodable response");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
                .into_response()
        }
    }
}

/// An error answer that still carries data (readiness details).
pub fn error_with_data<T: Serialize>(status: StatusCode, message: &str, data: &T) -> Response {
    let data = serde_json::to_vec(data).unwrap_or_else(|_| b"null".to_vec());
    let mut body = Vec::with_capacity(48 + message.len() + data.len());
    body.extend_from_slice(br#"{"status":"error","message":"#);
    write_json_string(&mut body, message);
    body.extend_from_slice(br#","data":"#);
    body.extend_from_slice(&data);
    body.push(b'}');
    json_response(status, body)
}

fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut res = (status, Bytes::from(body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn splices_raw_data_and_escapes_messages() {
        let res = raw(StatusCode::OK, "Data \"retrieved\"", br#"[{"a":1}]"#);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body(res).await,
            serde_json::json!({"status": "success", "message": "Data \"retrieved\"", "data": [{"a": 1}]})
        );
        let res = ApiError::invalid("The date field is required").into_response();
        assert_eq!(res.status(), 422);
        assert_eq!(
            body(res).await,
            serde_json::json!({"status": "error", "message": "The date field is required", "data": null})
        );
    }
}

//! Unauthenticated routes: health, readiness, the OpenAPI document and docs. Metrics are served on
//! the ops port only (`CLOKIO_GATEWAY_OPS_ADDR`), off the public network.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::App;
use crate::envelope::{self, ApiError};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/docs", get(docs))
}

async fn healthz() -> Response {
    envelope::raw(StatusCode::OK, "OK", b"null")
}

#[derive(Serialize)]
struct Readiness {
    nats: &'static str,
    redis: &'static str,
}

/// Ready when NATS is connected and Redis answers a PING.
async fn readyz(State(app): State<App>) -> Response {
    let nats_ok = app.bus.client().connection_state() == async_nats::connection::State::Connected;
    let redis_ok = app.limiter.ping().await;
    let state = Readiness {
        nats: if nats_ok { "ok" } else { "unavailable" },
        redis: if redis_ok { "ok" } else { "unavailable" },
    };
    if nats_ok && redis_ok {
        envelope::success(StatusCode::OK, "Ready", &state)
    } else {
        envelope::error_with_data(StatusCode::SERVICE_UNAVAILABLE, "Not ready", &state)
    }
}

async fn openapi() -> Response {
    match crate::openapi::document_json() {
        Some(json) => {
            let mut res = json.into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        None => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            .into_response(),
    }
}

async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

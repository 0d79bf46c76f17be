//! Unauthenticated routes: health, readiness, the OpenAPI document and docs. Metrics are served on
//! the ops port only (`CLOKIO_GATEWAY_OPS_ADDR`), off the public network.
//!
//! The docs page is Swagger UI with its assets built into the binary (`utoipa-swagger-ui`,
//! `vendored`): it works offline and under a CSP that allows only our own origin.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::App;
use crate::envelope::{self, ApiError};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(OPENAPI_URL, get(openapi))
        .merge(
            SwaggerUi::new("/docs").config(
                Config::new([OPENAPI_URL])
                    .try_it_out_enabled(true)
                    .persist_authorization(false),
            ),
        )
        .layer(middleware::from_fn(docs_policy))
}

const OPENAPI_URL: &str = "/api/v1/openapi.json";

/// Pages of the docs load only from our origin; Swagger UI sets inline styles on its elements.
const DOCS_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
    script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

async fn docs_policy(req: axum::extract::Request, next: middleware::Next) -> Response {
    let docs = req.uri().path().starts_with("/docs");
    let mut res = next.run(req).await;
    if docs {
        res.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        );
    }
    res
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

//! The small HTTP port every service serves for operators: `/healthz` (the process is up),
//! `/readyz` (its NATS connection, database and, where it has one, Redis answer) and `/metrics`
//! (Prometheus text). It carries no API and needs no key; keep it off the public network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;

/// One dependency's check: its name and whether it answers now.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// The checks of a service's readiness.
#[derive(Clone, Default)]
pub struct Readiness(Vec<(&'static str, Check)>);

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ready only while the client is connected.
    pub fn nats(mut self, client: async_nats::Client) -> Self {
        self.0.push((
            "nats",
            Arc::new(move || {
                let connected =
                    client.connection_state() == async_nats::connection::State::Connected;
                Box::pin(async move { connected })
            }),
        ));
        self
    }

    /// Ready while `SELECT 1` answers within a second.
    pub fn postgres(mut self, pool: sqlx::PgPool) -> Self {
        self.0.push((
            "postgres",
            Arc::new(move || {
                let pool = pool.clone();
                Box::pin(async move {
                    let ping = sqlx::query("SELECT 1").execute(&pool);
                    matches!(
                        tokio::time::timeout(Duration::from_secs(1), ping).await,
                        Ok(Ok(_))
                    )
                })
            }),
        ));
        self
    }

    /// Ready while Redis answers a PING.
    pub fn redis(mut self, redis: Arc<crate::redis::LazyRedis>) -> Self {
        self.0.push((
            "redis",
            Arc::new(move || {
                let redis = redis.clone();
                Box::pin(async move { redis.ping().await })
            }),
        ));
        self
    }
}

/// Serves the ops port on `addr` until the process ends (the caller aborts the task).
pub async fn serve(addr: SocketAddr, service: &'static str, readiness: Readiness) {
    crate::telemetry::metrics_handle();
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(err) => {
            tracing::error!(%addr, %err, "ops port not served");
            return;
        }
    };
    tracing::info!(%addr, service, "ops port listening");
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(readiness));
    if let Err(err) = axum::serve(listener, app).await {
        tracing::error!(%err, "ops port failed");
    }
}

async fn ready(State(readiness): State<Arc<Readiness>>) -> Response {
    let mut body = serde_json::Map::new();
    let mut all = true;
    for (name, check) in &readiness.0 {
        let ok = check().await;
        all &= ok;
        body.insert(
            (*name).to_owned(),
            serde_json::Value::from(if ok { "ok" } else { "unavailable" }),
        );
    }
    let status = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(serde_json::Value::Object(body))).into_response()
}

async fn metrics() -> Response {
    let mut res = crate::telemetry::metrics_handle().render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

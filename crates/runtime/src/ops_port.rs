//! The small HTTP port every service serves for operators: `/healthz` (the process is up),
//! `/readyz` (its NATS connection, database and, where it has one, Redis answer) and `/metrics`
//! (Prometheus text). It carries no API and needs no key; keep it off the public network.
//!
//! Some metrics are read when scraped rather than counted as things happen: the database pool's
//! connections, the outbox's backlog, and JetStream consumers' pending and redelivered messages.

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

/// Sets gauges from a reading taken at scrape time.
pub type Sample = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// The checks of a service's readiness, and the readings its `/metrics` takes.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
    samples: Vec<Sample>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ready only while the client is connected.
    pub fn nats(mut self, client: async_nats::Client) -> Self {
        self.checks.push((
            "nats",
            Arc::new(move || {
                let connected =
                    client.connection_state() == async_nats::connection::State::Connected;
                Box::pin(async move { connected })
            }),
        ));
        self
    }

    /// Ready while `SELECT 1` answers within a second (on a live connection: one the server ended,
    /// in a restart, is dropped and the next tried, so readiness comes back with the server
    /// rather than once traffic has worn out every dead idle connection); `/metrics` reads the
    /// pool's connections
    /// (`clokio_db_pool_connections{state="in_use"|"idle"}`, `clokio_db_pool_max_connections`).
    pub fn postgres(mut self, pool: sqlx::PgPool) -> Self {
        let sampled = pool.clone();
        self.samples.push(Arc::new(move || {
            let pool = sampled.clone();
            Box::pin(async move {
                let (size, idle) = (pool.size() as f64, pool.num_idle() as f64);
                metrics::gauge!("clokio_db_pool_connections", "state" => "in_use").set(size - idle);
                metrics::gauge!("clokio_db_pool_connections", "state" => "idle").set(idle);
                metrics::gauge!("clokio_db_pool_max_connections")
                    .set(pool.options().get_max_connections() as f64);
            })
        }));
        self.checks.push((
            "postgres",
            Arc::new(move || {
                let pool = pool.clone();
                Box::pin(async move {
                    let ping = async {
                        for _ in 0..=pool.size() {
                            match sqlx::query("SELECT 1").execute(&pool).await {
                                Ok(_) => return true,
                                Err(err) if crate::db::is_connection_lost(&err) => continue,
                                Err(_) => return false,
                            }
                        }
                        false
                    };
                    tokio::time::timeout(Duration::from_secs(1), ping)
                        .await
                        .unwrap_or(false)
                })
            }),
        ));
        self
    }

    /// Ready while Redis answers a PING.
    pub fn redis(mut self, redis: Arc<crate::redis::LazyRedis>) -> Self {
        self.checks.push((
            "redis",
            Arc::new(move || {
                let redis = redis.clone();
                Box::pin(async move { redis.ping().await })
            }),
        ));
        self
    }

    /// `/metrics` reads the outbox's backlog: `clokio_outbox_pending_rows` and
    /// `clokio_outbox_oldest_seconds` (how long the oldest unpublished event has waited; the
    /// relay's lag), of the rows under this subject prefix.
    pub fn outbox(mut self, pool: sqlx::PgPool, prefix: String) -> Self {
        self.samples.push(Arc::new(move || {
            let (pool, prefix) = (pool.clone(), prefix.clone());
            Box::pin(async move {
                let read = sqlx::query_as::<_, (i64, f64)>(
                    "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 \
                     FROM outbox WHERE split_part(subject, '.', 1) = $1",
                )
                .bind(&prefix)
                .fetch_one(&pool);
                if let Ok(Ok((rows, oldest))) = tokio::time::timeout(Duration::from_secs(1), read).await
                {
                    metrics::gauge!("clokio_outbox_pending_rows").set(rows as f64);
                    metrics::gauge!("clokio_outbox_oldest_seconds").set(oldest);
                }
            })
        }));
        self
    }

    /// `/metrics` reads a JetStream consumer: `clokio_jetstream_consumer_pending` (messages not
    /// yet delivered), `clokio_jetstream_consumer_ack_pending` (delivered, not yet acknowledged:
    /// in progress or waiting for a retry) and `clokio_jetstream_consumer_redelivered`, each
    /// labelled with the consumer.
    pub fn consumer(
        mut self,
        js: async_nats::jetstream::Context,
        stream: String,
        consumer: &'static str,
    ) -> Self {
        self.samples.push(Arc::new(move || {
            let (js, stream) = (js.clone(), stream.clone());
            Box::pin(async move {
                let read = async {
                    js.get_stream_no_info(&stream)
                        .await
                        .ok()?
                        .consumer_info(consumer)
                        .await
                        .ok()
                };
                if let Ok(Some(info)) = tokio::time::timeout(Duration::from_secs(1), read).await {
                    metrics::gauge!("clokio_jetstream_consumer_pending", "consumer" => consumer)
                        .set(info.num_pending as f64);
                    metrics::gauge!("clokio_jetstream_consumer_ack_pending", "consumer" => consumer)
                        .set(info.num_ack_pending as f64);
                    metrics::gauge!("clokio_jetstream_consumer_redelivered", "consumer" => consumer)
                        .set(info.num_redelivered as f64);
                }
            })
        }));
        self
    }
}

/// The ops port could not be bound: the service does not start, as it would otherwise run
/// without the probes and metrics its operator relies on (and another process might be answering
/// them on that port).
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on the ops port {addr}: {source}")]
pub struct BindError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// Binds the ops port on `addr`, then serves it in a task until the task is aborted.
pub async fn start(
    addr: SocketAddr,
    service: &'static str,
    readiness: Readiness,
) -> Result<tokio::task::JoinHandle<()>, BindError> {
    crate::telemetry::metrics_handle();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    tracing::info!(%addr, service, "ops port listening");
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(readiness));
    Ok(tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "ops port failed");
        }
    }))
}

async fn ready(State(readiness): State<Arc<Readiness>>) -> Response {
    let mut body = serde_json::Map::new();
    let mut all = true;
    for (name, check) in &readiness.checks {
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

async fn metrics(State(readiness): State<Arc<Readiness>>) -> Response {
    futures::future::join_all(readiness.samples.iter().map(|sample| sample())).await;
    let mut res = crate::telemetry::metrics_handle().render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

//! What every Clokio service shares at run time: configuration read from the environment and
//! validated at start, telemetry (logs, metrics), NATS and Postgres connections, the shutdown
//! signal, and the transactional outbox that makes "2xx means the event will be published" true.

pub mod cache;
pub mod config;
pub mod db;
pub mod directory;
pub mod http;
pub mod ops;
pub mod outbox;
pub mod redis;
pub mod telemetry;

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
}

/// Connects to NATS with the client name set, retrying the first connection so a service can
/// start before its NATS server is up.
pub async fn connect_nats(
    url: &str,
    name: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connect(url)
        .await
}

//! What every Clokio service shares at run time: configuration read from the environment and
//! validated at start, telemetry (logs, metrics), NATS and Postgres connections, the shutdown
//! signal, and the transactional outbox that makes "2xx means the event will be published" true.

pub mod cache;
pub mod config;
pub mod db;
pub mod directory;
pub mod http;
pub mod ops_port;
pub mod outbox;
pub mod redis;
pub mod service;
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

/// How often a client pings its NATS node. A node whose host vanishes without closing its
/// connections is noticed once pings go unanswered: within about 30 s, not async-nats's 3 min.
pub const NATS_PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The NATS client options every service starts from: its name, pings every
/// [`NATS_PING_INTERVAL`], and retries of the first connection so a service can start before its
/// NATS server is up.
pub fn nats_options(name: &str) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .name(name)
        .ping_interval(NATS_PING_INTERVAL)
        .retry_on_initial_connect()
}

/// Connects to NATS: to any node of `bus`'s list, with [`nats_options`].
pub async fn connect_nats(
    bus: &config::BusConfig,
    name: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    nats_options(name).connect(bus.servers()).await
}

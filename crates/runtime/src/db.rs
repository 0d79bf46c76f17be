//! Postgres: each service owns one schema and keeps its migration history in it, so several
//! services can share one database without seeing each other's tables.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Connects a pool whose connections use `schema` as their search path, creating the schema if
/// it is missing. Retries for up to `wait` so a service can start before its database.
pub async fn connect(
    url: &str,
    schema: &str,
    max_connections: u32,
    wait: Duration,
) -> Result<PgPool, sqlx::Error> {
    let base = PgConnectOptions::from_str(url)?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match try_connect(&base, schema, max_connections).await {
            Ok(pool) => return Ok(pool),
            Err(err) if tokio::time::Instant::now() < deadline && is_transient(&err) => {
                tracing::warn!(%err, "database not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

async fn try_connect(
    base: &PgConnectOptions,
    schema: &str,
    max_connections: u32,
) -> Result<PgPool, sqlx::Error> {
    // Schema creation can race between replicas starting together; losing the race is fine.
    let bootstrap = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(base.clone())
        .await?;
    if let Err(err) = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .execute(&bootstrap)
        .await
    {
        let raced = err
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|c| c == "23505" || c == "42P06");
        if !raced {
            return Err(err);
        }
    }
    bootstrap.close().await;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(3))
        // sqlx pings every connection it hands out by default: one extra round trip per query.
        // A dead connection fails its query instead, which maps to 503 like any outage.
        .test_before_acquire(false)
        .connect_with(base.clone().options([("search_path", schema)]))
        .await
}

fn is_transient(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_)
    ) || err
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "57P03") // the database system is starting up
}

/// True when the error means the database is unreachable or overloaded (answer 503), not that the
/// request was wrong.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
    )
}

/// True for SQLSTATE class 22 (data exception: a NUL byte in text, a number out of range): the
/// input was wrong, not the server.
pub fn is_data_exception(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c.starts_with("22"))
}

/// The answer for a database error no caller expected: a value Postgres cannot store → 422, an
/// unreachable database → 503, anything else → 500 (logged, never shown).
pub fn bus_error(err: sqlx::Error) -> clokio_bus::BusError {
    use clokio_bus::BusError;
    if is_data_exception(&err) {
        return BusError::invalid("The request contains a value that cannot be stored");
    }
    if is_unavailable(&err) {
        tracing::warn!(%err, "database unavailable");
        return BusError::unavailable();
    }
    tracing::error!(%err, "database error");
    BusError::internal()
}

/// The constraint a unique violation broke, if that is what `err` is.
pub fn unique_violation(err: &sqlx::Error) -> Option<String> {
    let db = err.as_database_error()?;
    (db.code().as_deref() == Some("23505")).then(|| db.constraint().unwrap_or("").to_owned())
}

/// A span around one database transaction or statement, a child of the current span (so it sits
/// in the trace of the request or event that caused it).
pub fn span(operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db",
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = operation,
    )
}

//! Postgres: each service owns one schema and keeps its migration history in it, so several
//! services can share one database without seeing each other's tables.

use std::future::Future;
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
    let mut base = PgConnectOptions::from_str(url)?;
    // Name the service's sessions in `pg_stat_activity` unless the URL already names them.
    if base.get_application_name().is_none() {
        base = base.application_name(&format!("clokio-{schema}"));
    }
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

/// Takes a lock on `(what, org)` held until `tx` ends: for a count and an insert that must not
/// interleave with another transaction's (a cap per organization). Count in a statement after
/// this one: a statement's snapshot is taken before any lock it waits for.
pub async fn lock_org(
    tx: &mut sqlx::PgConnection,
    what: &str,
    org: uuid::Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '.' || $2::text, 0))")
        .bind(what)
        .bind(org)
        .execute(tx)
        .await?;
    Ok(())
}

/// True when the error means the database is unreachable or overloaded (answer 503), not that the
/// request was wrong.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) || is_connection_lost(err)
}

/// True when the connection broke or the server ended the session: an I/O or TLS error, or
/// SQLSTATE class 08 (connection exception) or 57P01-57P03 (shut down, crashed, starting up).
///
/// A statement or `COMMIT` that fails this way may still have committed: Postgres makes a commit
/// durable before it answers, and a crash or an immediate shutdown can end the session in between.
/// Its outcome is unknown until [`settle`] has asked.
pub fn is_connection_lost(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Io(_) | sqlx::Error::Tls(_))
        || err
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03"))
}

/// Finds out whether a write whose connection was lost ([`is_connection_lost`]) committed:
/// runs `committed` (a read of what the write leaves behind, on a new connection from the pool)
/// until the database answers, for at most `wait`. `None` when it did not answer in time.
pub async fn settle<T, F, Fut>(wait: Duration, mut committed: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        match tokio::time::timeout(left, committed()).await {
            Ok(Ok(committed)) => return Some(committed),
            Ok(Err(err)) => tracing::debug!(%err, "the write's outcome is not known yet"),
            Err(_) => return None,
        }
        tokio::time::sleep(Duration::from_millis(50).min(left)).await;
    }
}

/// The answer to a write whose outcome [`settle`] could not find out in time.
pub fn outcome_unknown() -> clokio_bus::BusError {
    tracing::warn!("the database went away during a write and did not come back in time");
    clokio_bus::BusError::new(
        clokio_bus::ErrorCode::Timeout,
        "The database stopped answering while the request was being written, so whether it was \
         recorded is not known; read the current state, or retry with the same Idempotency-Key",
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

/// The unique constraints a service expects a request to break, each with the code and message
/// it answers (see [`on_constraint`]).
pub trait Expected {
    const UNIQUE: &'static [(&'static str, clokio_bus::ErrorCode, &'static str)];
}

/// A service no request of which breaks a constraint (webhook-svc, reporting-svc).
#[derive(Debug)]
pub struct NoneExpected;

impl Expected for NoneExpected {
    const UNIQUE: &'static [(&'static str, clokio_bus::ErrorCode, &'static str)] = &[];
}

/// A service's error: what the bus answers, or what the database said, one type for `?` on both.
/// It becomes the bus answer at dispatch, a database error through [`on_constraint`] with the
/// service's table `E`.
#[derive(Debug, thiserror::Error)]
pub enum Error<E: Expected = NoneExpected> {
    #[error(transparent)]
    Bus(#[from] clokio_bus::BusError),
    #[error("database: {0}")]
    Db(sqlx::Error, std::marker::PhantomData<E>),
}

impl<E: Expected> From<sqlx::Error> for Error<E> {
    fn from(err: sqlx::Error) -> Self {
        Self::Db(err, std::marker::PhantomData)
    }
}

impl<E: Expected> From<Error<E>> for clokio_bus::BusError {
    fn from(err: Error<E>) -> Self {
        match err {
            Error::Bus(err) => err,
            Error::Db(err, _) => on_constraint(err, E::UNIQUE),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A database error as the bus answers it. Each unique constraint a service expects to be broken
/// by a request is named once, in the service's table, with the code and message it answers;
/// any other error is [`bus_error`]'s.
pub fn on_constraint(
    err: sqlx::Error,
    expected: &[(&str, clokio_bus::ErrorCode, &str)],
) -> clokio_bus::BusError {
    if let Some(constraint) = unique_violation(&err)
        && let Some((_, code, message)) = expected.iter().find(|(name, ..)| *name == constraint)
    {
        return clokio_bus::BusError::new(*code, *message);
    }
    bus_error(err)
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

/// Dead and newly inserted rows in a table that call for a `VACUUM (ANALYZE)`.
const UPKEEP_AFTER: i64 = 10_000;

/// Keeps the service's own tables vacuumed and analyzed, whether or not the server's autovacuum
/// is on or has come round yet: every 30 s, [`vacuum`] with [`UPKEEP_AFTER`].
///
/// Some of our tables churn far faster than autovacuum's defaults assume. The outbox is a queue
/// (every event is inserted and deleted: 1,500 events/s leave 90,000 dead rows a minute, which
/// the relay's index scan then has to step over), clock-outs rewrite sessions, and a history
/// import or a projection rebuild adds 100,000s of rows whose statistics the planner needs
/// (the monthly summary sorted 220,000 rows on disk with an empty table's statistics) and whose
/// visibility map index-only scans need.
pub async fn upkeep(pool: PgPool) {
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        if let Err(err) = vacuum(&pool, UPKEEP_AFTER).await {
            tracing::warn!(%err, "table upkeep failed; will retry");
        }
    }
}

/// `VACUUM (ANALYZE)` of the tables in the pool's schema with at least `after` dead rows, rows
/// inserted since their last vacuum, or rows changed since their last analyze, by one replica at a
/// time (the others skip). Returns the tables it vacuumed.
pub async fn vacuum(pool: &PgPool, after: i64) -> Result<Vec<String>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let (got,): (bool,) =
        sqlx::query_as("SELECT pg_try_advisory_lock(hashtext(current_schema() || '.upkeep'))")
            .fetch_one(&mut *conn)
            .await?;
    if !got {
        return Ok(Vec::new());
    }
    let result = async {
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT quote_ident(relname) FROM pg_stat_user_tables \
             WHERE schemaname = current_schema() AND relname <> '_sqlx_migrations' \
               AND greatest(n_dead_tup, n_ins_since_vacuum, n_mod_since_analyze) >= $1 \
             ORDER BY relname",
        )
        .bind(after)
        .fetch_all(&mut *conn)
        .await?;
        let tables: Vec<String> = tables.into_iter().map(|(t,)| t).collect();
        if !tables.is_empty() {
            // VACUUM cannot run in a transaction, so it goes by the simple protocol.
            let sql = format!("VACUUM (ANALYZE) {}", tables.join(", "));
            sqlx::Executor::execute(&mut *conn, sql.as_str()).await?;
            tracing::debug!(?tables, "vacuumed");
        }
        Ok(tables)
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(hashtext(current_schema() || '.upkeep'))")
        .execute(&mut *conn)
        .await?;
    result
}

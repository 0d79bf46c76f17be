//! The test kit of the system tests in `it/` (and of `deploy`'s): boots Clokio services
//! in-process against the real Postgres, Redis and NATS, each stack under a random subject prefix
//! (so parallel tests never see each other's messages or rate limit counters), and drives the
//! gateway over HTTP like a client. By concern: `stack` (the services), `http` (the gateway
//! client, with domain helpers such as `clock_in` and `webhook`), `servers` (Postgres, Redis and
//! NATS a test owns), `receiver` (a webhook receiver), `events`, `metrics`, `console`, `sse`,
//! `cut` (a proxy that cuts a connection).
//!
//! Servers come from `CLOKIO_TEST_DATABASE_URL`, `CLOKIO_NATS_URL`, `CLOKIO_REDIS_URL`
//! (defaults: the local servers that `deploy/local/test.sh` makes sure of).

mod console;
mod cut;
mod events;
mod http;
mod metrics;
mod receiver;
mod servers;
mod sse;
mod stack;

pub use console::{ADMIN_PASSWORD, Browser, Console, Page, html_escape};
pub use cut::{Cut, CutProxy};
pub use events::{Events, ReceivedEvent};
pub use http::{Gateway, Res, Tenant};
pub use metrics::Metrics;
pub use receiver::{Answer, Received, Receiver};
pub use servers::{LinkedNats, NatsCluster, NatsServer, PgServer, RedisServer, free_port};
pub use sse::{EventStream, Frame};
pub use stack::{Isolated, Stack};

use clokio_bus::Prefix;
use clokio_bus::ids::OrgId;

pub use serde_json::json;

pub fn database_url() -> String {
    std::env::var("CLOKIO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://clokio:clokio@127.0.0.1:5432/clokio_test".to_owned())
}

pub fn nats_url() -> String {
    std::env::var("CLOKIO_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("CLOKIO_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A fresh random subject prefix, `t` + 12 hex characters.
pub fn random_prefix() -> Prefix {
    Prefix::parse(&format!(
        "t{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ))
    .expect("valid prefix")
}

/// Inserts `n` employees (`{prefix}00001`, …) straight into employee-svc's tables, at the org's
/// first location: creating thousands through the API would spend minutes hashing passwords.
pub async fn seed_employees(org: OrgId, prefix: &str, n: i32, hire_date: &str) {
    let mut db = db().await.acquire().await.expect("test database reachable");
    clokio_employee_svc::seed::Seed {
        org,
        code_prefix: prefix,
        first: 1,
        n,
        name: "Employee",
        department: None,
        hire_date: hire_date.parse().expect("a hire date"),
    }
    .insert(&mut db)
    .await
    .expect("employees seeded");
}

/// A pool on the test database, for asserting what services stored.
pub async fn db() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database_url())
        .await
        .expect("test database reachable")
}

/// Waits until some connection of `db`'s server waits on a lock held by the backend `holder`
/// (a `pg_backend_pid()`), for at most 10 s; `what` names the waiter in the failure.
pub async fn until_blocked_by(db: &sqlx::PgPool, holder: i32, what: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
        )
        .bind(holder)
        .fetch_one(db)
        .await
        .expect("pg_stat_activity readable");
        if waiting > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never waited for the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

//! attendance-svc: clock events, breaks, leave and attendance reads. It owns the Postgres schema
//! `attendance`, is its only writer, and answers on `<prefix>.v1.attendance.<operation>`. What it
//! needs of employees, locations and org settings it asks employee-svc over NATS and caches (see
//! [`directory`]). Every state change and its events commit in one transaction; the outbox relay
//! publishes them to JetStream.

mod autoclose;
mod config;
mod db;
mod events;
mod geo;
mod handlers;
mod idempotency;
mod periods;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clokio_bus::ops::{self, ATTENDANCE_OPERATIONS, Operation};
use clokio_bus::server::{Handler, Spec, decode};
use clokio_bus::{Bus, BusError, ErrorCode, ServiceName, Subjects};
use clokio_runtime::outbox::{self, Kick};
use sqlx::PgPool;
use tokio::sync::watch;

use clokio_runtime::directory::Directory;
pub use config::Config;
use handlers::clock::Action;

/// Shared state of every handler.
#[derive(Clone)]
pub struct State {
    pub(crate) pool: PgPool,
    pub(crate) subjects: Subjects,
    pub(crate) kick: Kick,
    pub(crate) directory: Arc<Directory>,
    /// How long a write whose connection was lost waits to learn whether it committed: under the
    /// bus's request timeout, so the answer still reaches the caller.
    pub(crate) settle_wait: Duration,
}

/// Starts attendance-svc and runs it until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let nats = clokio_runtime::connect_nats(&config.bus, "attendance-svc").await?;
    let pool = clokio_runtime::db::connect(
        &config.database_url,
        "attendance",
        config.db_max_connections,
        Duration::from_secs(30),
    )
    .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    let js = async_nats::jetstream::new(nats.clone());
    clokio_bus::events::ensure_events_stream(&js, &config.bus.subjects, config.bus.stream_replicas)
        .await?;

    let bus = Bus::new(
        nats.clone(),
        config.bus.subjects.clone(),
        config.bus.request_timeout,
    );
    let directory = Arc::new(Directory::new(nats.clone(), bus).await?);
    let sync = tokio::spawn({
        let directory = directory.clone();
        async move { directory.run_sync().await }
    });
    let sweep = tokio::spawn(idempotency::sweep(pool.clone()));
    let upkeep = tokio::spawn(clokio_runtime::db::upkeep(pool.clone()));
    let ops = match config.ops_addr {
        Some(addr) => {
            let readiness = clokio_runtime::ops_port::Readiness::new()
                .nats(nats.clone())
                .postgres(pool.clone())
                .outbox(pool.clone(), config.bus.subjects.prefix().to_string());
            Some(clokio_runtime::ops_port::start(addr, "attendance-svc", readiness).await?)
        }
        None => None,
    };
    let state = State {
        pool: pool.clone(),
        subjects: config.bus.subjects.clone(),
        kick: Kick::default(),
        directory,
        settle_wait: config.bus.request_timeout * 4 / 5,
    };
    let autoclose = tokio::spawn(autoclose::run(state.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let relay = tokio::spawn(outbox::relay(
        pool.clone(),
        js,
        config.bus.subjects.prefix().to_string(),
        state.kick.clone(),
        async move {
            let mut rx = stop_rx;
            let _ = rx.wait_for(|stop| *stop).await;
        },
    ));

    let spec = Spec {
        service: ServiceName::Attendance,
        description: "Clock events, breaks, leave and attendance reads",
        operations: ATTENDANCE_OPERATIONS,
        max_in_flight: config.max_in_flight,
    };
    let served = clokio_bus::server::serve(
        nats.clone(),
        &config.bus.subjects,
        spec,
        Arc::new(state),
        shutdown,
    )
    .await;
    let _ = stop_tx.send(true);
    sync.abort();
    autoclose.abort();
    upkeep.abort();
    sweep.abort();
    if let Some(ops) = ops {
        ops.abort();
    }
    let _ = relay.await;
    let _ = nats.flush().await;
    pool.close().await;
    served?;
    Ok(())
}

impl Handler for State {
    async fn handle(&self, operation: &str, payload: Bytes) -> Result<Bytes, BusError> {
        Ok(self.dispatch(operation, payload).await?)
    }
}

impl State {
    /// The operation's handler; its error is answered on the bus by [`db::Error`]'s mapping.
    async fn dispatch(&self, operation: &str, payload: Bytes) -> db::Result<Bytes> {
        use handlers::{clock, corrections, import, leaves, reads};
        let p = &payload[..];
        match operation {
            ops::ClockInOp::NAME => {
                clock::handle(self, Action::ClockIn, decode::<ops::ClockInOp>(p)?).await
            }
            ops::ClockOutOp::NAME => {
                clock::handle(self, Action::ClockOut, decode::<ops::ClockOutOp>(p)?).await
            }
            ops::BreakStartOp::NAME => {
                clock::handle(self, Action::BreakStart, decode::<ops::BreakStartOp>(p)?).await
            }
            ops::BreakEndOp::NAME => {
                clock::handle(self, Action::BreakEnd, decode::<ops::BreakEndOp>(p)?).await
            }
            ops::DailyOp::NAME => reads::daily(self, decode::<ops::DailyOp>(p)?).await,
            ops::RangeOp::NAME => reads::range(self, decode::<ops::RangeOp>(p)?).await,
            ops::EmployeeRangeOp::NAME => {
                reads::employee_range(self, decode::<ops::EmployeeRangeOp>(p)?).await
            }
            ops::EmployeeActivityOp::NAME => {
                reads::employee_activity(self, decode::<ops::EmployeeActivityOp>(p)?).await
            }
            ops::OrgActivityOp::NAME => {
                reads::org_activity(self, decode::<ops::OrgActivityOp>(p)?).await
            }
            ops::ImportOp::NAME => import::import(self, decode::<ops::ImportOp>(p)?).await,
            ops::LeaveCreateOp::NAME => {
                leaves::create(self, decode::<ops::LeaveCreateOp>(p)?).await
            }
            ops::LeaveListOp::NAME => leaves::list(self, decode::<ops::LeaveListOp>(p)?).await,
            ops::LeaveDeleteOp::NAME => {
                leaves::delete(self, decode::<ops::LeaveDeleteOp>(p)?).await
            }
            ops::SessionUpdateOp::NAME => {
                corrections::update(self, decode::<ops::SessionUpdateOp>(p)?).await
            }
            ops::SessionDeleteOp::NAME => {
                corrections::delete(self, decode::<ops::SessionDeleteOp>(p)?).await
            }
            ops::SessionCreateOp::NAME => {
                corrections::create(self, decode::<ops::SessionCreateOp>(p)?).await
            }
            ops::SessionGetOp::NAME => {
                corrections::get(self, decode::<ops::SessionGetOp>(p)?).await
            }
            ops::SessionHistoryOp::NAME => {
                corrections::history(self, decode::<ops::SessionHistoryOp>(p)?).await
            }
            ops::PeriodCloseOp::NAME => {
                periods::close(self, decode::<ops::PeriodCloseOp>(p)?).await
            }
            ops::PeriodReopenOp::NAME => {
                periods::reopen(self, decode::<ops::PeriodReopenOp>(p)?).await
            }
            ops::PeriodListOp::NAME => periods::list(self, decode::<ops::PeriodListOp>(p)?).await,
            other => {
                Err(BusError::new(ErrorCode::NotFound, format!("Unknown operation {other}")).into())
            }
        }
    }
}

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

use clokio_bus::ops::{self};
use clokio_bus::server::Spec;
use clokio_bus::{Bus, ServiceName, Subjects};
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
    /// The employees' states this replica last read or wrote, to decide a punch on without
    /// reading first.
    pub(crate) known: clock::KnownStates,
    /// The replica's batcher of clock writes.
    pub(crate) batches: clock::batch::Batches,
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
        known: clock::KnownStates::default(),
        batches: clock::batch::Batches::start(
            pool.clone(),
            config.bus.subjects.prefix().to_string(),
            config.batch_lock_wait,
        ),
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
        operations: State::OPERATIONS,
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

use handlers::{clock, corrections, import, leaves, reads};

clokio_bus::operations! {
    State {
        ops::ClockInOp => encoded |s, r| clock::handle(s, Action::ClockIn, r),
        ops::ClockOutOp => encoded |s, r| clock::handle(s, Action::ClockOut, r),
        ops::BreakStartOp => encoded |s, r| clock::handle(s, Action::BreakStart, r),
        ops::BreakEndOp => encoded |s, r| clock::handle(s, Action::BreakEnd, r),
        ops::DailyOp => encoded |s, r| reads::daily(s, r),
        ops::RangeOp => encoded |s, r| reads::range(s, r),
        ops::EmployeeRangeOp => encoded |s, r| reads::employee_range(s, r),
        ops::EmployeeActivityOp => encoded |s, r| reads::employee_activity(s, r),
        ops::OrgActivityOp => encoded |s, r| reads::org_activity(s, r),
        ops::ImportOp => encoded |s, r| import::import(s, r),
        ops::LeaveCreateOp => encoded |s, r| leaves::create(s, r),
        ops::LeaveListOp => encoded |s, r| leaves::list(s, r),
        ops::LeaveDeleteOp => encoded |s, r| leaves::delete(s, r),
        ops::SessionUpdateOp => encoded |s, r| corrections::update(s, r),
        ops::SessionDeleteOp => encoded |s, r| corrections::delete(s, r),
        ops::SessionCreateOp => encoded |s, r| corrections::create(s, r),
        ops::SessionGetOp => encoded |s, r| corrections::get(s, r),
        ops::SessionHistoryOp => encoded |s, r| corrections::history(s, r),
        ops::PeriodCloseOp => encoded |s, r| periods::close(s, r),
        ops::PeriodReopenOp => encoded |s, r| periods::reopen(s, r),
        ops::PeriodListOp => encoded |s, r| periods::list(s, r),
    }
}

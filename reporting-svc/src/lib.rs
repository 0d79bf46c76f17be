//! reporting-svc: the monthly attendance summary for payroll, as JSON and as a streamed CSV. It
//! owns the Postgres schema `reporting`: a projection of attendance-svc's sessions and leave, fed
//! by the events on JetStream (see [`projection`]). Employees and org settings it asks
//! employee-svc over NATS, cached. Why a projection, not a question to attendance-svc per report:
//! `docs/architecture.md`.

mod config;
mod copy;
mod db;
mod periods;
pub mod projection;
mod summary;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clokio_bus::ops::{self};
use clokio_bus::server::Spec;
use clokio_bus::{Bus, ServiceName};
use clokio_runtime::directory::Directory;
use sqlx::PgPool;
use tokio::sync::watch;

pub use config::Config;

/// Shared state of every handler.
#[derive(Clone)]
pub struct State {
    pub(crate) pool: PgPool,
    pub(crate) nats: async_nats::Client,
    pub(crate) directory: Arc<Directory>,
    /// How long a CSV stream waits for the requester to take a chunk.
    pub(crate) stream_timeout: Duration,
}

/// Starts reporting-svc and runs it until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let nats = clokio_runtime::connect_nats(&config.bus, "reporting-svc").await?;
    let pool = clokio_runtime::db::connect(
        &config.database_url,
        "reporting",
        config.db_max_connections,
        Duration::from_secs(30),
    )
    .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    let js = async_nats::jetstream::new(nats.clone());
    // Fail at start, not later, if the consumer cannot be made.
    projection::consumer(&js, &config.bus.subjects, config.bus.stream_replicas).await?;

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
    let upkeep = tokio::spawn(clokio_runtime::db::upkeep(pool.clone()));
    let ops = match config.ops_addr {
        Some(addr) => {
            let readiness = clokio_runtime::ops_port::Readiness::new()
                .nats(nats.clone())
                .postgres(pool.clone())
                .consumer(
                    async_nats::jetstream::new(nats.clone()),
                    config.bus.subjects.events_stream(),
                    projection::CONSUMER,
                );
            Some(clokio_runtime::ops_port::start(addr, "reporting-svc", readiness).await?)
        }
        None => None,
    };
    let state = State {
        pool: pool.clone(),
        nats: nats.clone(),
        directory,
        stream_timeout: config.bus.request_timeout.max(Duration::from_secs(30)),
    };
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let projector = tokio::spawn(projection::run(
        state.clone(),
        js,
        config.bus.subjects.clone(),
        config.bus.stream_replicas,
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        },
    ));
    let spec = Spec {
        service: ServiceName::Reporting,
        description: "Monthly attendance summary and CSV export",
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
    upkeep.abort();
    if let Some(ops) = ops {
        ops.abort();
    }
    let _ = projector.await;
    let _ = nats.flush().await;
    pool.close().await;
    served?;
    Ok(())
}

clokio_bus::operations! {
    State {
        ops::SummaryOp => encoded |s, q| async move {
            summary::json(s, q.org_id, summary::Month::new(q.year, q.month)?).await
        },
        ops::SummaryCsvOp => encoded |s, q| async move {
            let month = summary::Month::new(q.year, q.month)?;
            summary::csv(s, q.org_id, month, q.inbox).await
        },
    }
}

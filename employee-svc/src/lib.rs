//! employee-svc: organizations, plans, API keys, locations and employees. It owns the Postgres
//! schema `employee`, is its only writer, and answers on `<prefix>.v1.employee.<operation>`.
//! Every change that others must learn of (employee lifecycle, key revocation, org settings) is
//! written to the outbox in the same transaction and relayed to JetStream.

mod config;
mod db;
mod handlers;
pub mod seed;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clokio_bus::ops::{self};
use clokio_bus::server::Spec;
use clokio_bus::types::EmployeeStatus;
use clokio_bus::{BusError, ServiceName, Subjects};
use clokio_runtime::cache::OrgCache;
use clokio_runtime::outbox::{self, Kick};
use clokio_runtime::redis::LazyRedis;
use sqlx::PgPool;
use tokio::sync::watch;

use handlers::{admins, employees, keys, locations, orgs};

pub use config::Config;

/// Shared state of every handler.
#[derive(Clone)]
pub struct State {
    pub pool: PgPool,
    pub subjects: Subjects,
    pub kick: Kick,
    /// Employee lists by status, as JSON.
    pub lists: Arc<OrgCache<Option<EmployeeStatus>>>,
    /// Where writes bump the org generation that gateways' cached reads are checked against.
    pub redis: Arc<LazyRedis>,
}

/// Starts employee-svc and runs it until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let nats = clokio_runtime::connect_nats(&config.bus, "employee-svc").await?;
    let pool = clokio_runtime::db::connect(
        &config.database_url,
        "employee",
        config.db_max_connections,
        Duration::from_secs(30),
    )
    .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    let js = async_nats::jetstream::new(nats.clone());
    clokio_bus::events::ensure_events_stream(&js, &config.bus.subjects, config.bus.stream_replicas)
        .await?;

    let lists = Arc::new(
        OrgCache::new(
            "employee_list",
            nats.clone(),
            config
                .bus
                .subjects
                .cache_invalidations(ServiceName::Employee),
            None,
        )
        .await?,
    );
    let sync = tokio::spawn({
        let lists = lists.clone();
        async move { lists.run_sync().await }
    });
    let state = State {
        pool: pool.clone(),
        subjects: config.bus.subjects.clone(),
        kick: Kick::default(),
        lists,
        redis: Arc::new(LazyRedis::new(
            &config.redis_url,
            Duration::from_millis(500),
        )?),
    };
    let ops = match config.ops_addr {
        Some(addr) => {
            let readiness = clokio_runtime::ops_port::Readiness::new()
                .nats(nats.clone())
                .postgres(pool.clone())
                .outbox(pool.clone(), config.bus.subjects.prefix().to_string())
                .redis(state.redis.clone());
            Some(clokio_runtime::ops_port::start(addr, "employee-svc", readiness).await?)
        }
        None => None,
    };
    let upkeep = tokio::spawn(clokio_runtime::db::upkeep(pool.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let relay = tokio::spawn(outbox::relay(
        pool.clone(),
        js,
        config.bus.subjects.prefix().to_string(),
        state.kick.clone(),
        wait(stop_rx),
    ));

    let spec = Spec {
        service: ServiceName::Employee,
        description: "Organizations, API keys, locations and employees",
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
    let _ = relay.await;
    let _ = nats.flush().await;
    pool.close().await;
    served?;
    Ok(())
}

async fn wait(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl State {
    /// After a committed write of anything of `org` that other services cache (employees,
    /// locations, settings), before answering it: invalidate every cache of it. The announcement
    /// must have reached the server before the generation moves, or a gateway could see the new
    /// generation and load from a replica that still has the old list.
    pub(crate) async fn org_changed(&self, org: clokio_bus::ids::OrgId) {
        if !self.lists.invalidate(org).await {
            tracing::warn!(%org, "cache invalidation not confirmed by NATS");
        }
        if !self
            .redis
            .bump_generation(self.subjects.prefix().as_str(), org)
            .await
        {
            metrics::counter!("clokio_cache_generation_bump_failed_total").increment(1);
            tracing::warn!(%org, "could not bump the org cache generation in Redis");
        }
    }
}

clokio_bus::operations! {
    State {
        ops::OrgCreateOp => |s, r| orgs::create(s, r),
        ops::OrgListOp => |s, _| orgs::list(s),
        ops::OrgGetOp => |s, r| orgs::get(s, r.org_id),
        ops::OrgUpdateOp => |s, r| orgs::update(s, r),
        ops::KeyCreateOp => |s, r| keys::create(s, r),
        ops::KeyListOp => |s, r| keys::list(s, r.org_id),
        ops::KeyRevokeOp => |s, r| keys::revoke(s, r),
        ops::KeyVerifyOp => |s, r| keys::verify(s, r),
        ops::KeyTouchOp => |s, r| keys::touch(s, r),
        ops::LocationCreateOp => |s, r| locations::create(s, r),
        ops::LocationListOp => |s, r| locations::list(s, r.org_id),
        ops::EmployeeCreateOp => |s, r| employees::create(s, r),
        ops::EmployeeListOp => encoded |s, r| s.employee_list(r),
        ops::EmployeeGetOp => |s, r| employees::get(s, r),
        ops::EmployeeSetStatusOp => |s, r| employees::set_status(s, r),
        ops::EmployeePageOp => |s, r| employees::page(s, r),
        ops::AdminCreateOp => |s, r| admins::create(s, r),
        ops::AdminListOp => |s, r| admins::list(s, r.org_id),
        ops::AdminGetOp => |s, r| admins::get(s, r),
        ops::AdminRemoveOp => |s, r| admins::remove(s, r),
        ops::AdminSignInOp => |s, r| admins::sign_in(s, r),
        ops::AdminResetPasswordOp => |s, r| admins::reset_password(s, r),
        ops::AdminSetPasswordOp => |s, r| admins::set_password(s, r),
    }
}

impl State {
    /// The org's employees, from the cache every write of them invalidates.
    async fn employee_list(&self, req: ops::EmployeeList) -> Result<Bytes, BusError> {
        self.lists
            .get_or_load(req.org_id, req.status, None, || async {
                clokio_bus::server::to_bytes(&employees::list(self, req.clone()).await?)
            })
            .await
    }
}

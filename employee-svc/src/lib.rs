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
use clokio_bus::ops::{self, EMPLOYEE_OPERATIONS, Operation};
use clokio_bus::server::{Handler, Spec, dispatch};
use clokio_bus::types::EmployeeStatus;
use clokio_bus::{BusError, ErrorCode, ServiceName, Subjects};
use clokio_runtime::cache::OrgCache;
use clokio_runtime::outbox::{self, Kick};
use clokio_runtime::redis::LazyRedis;
use sqlx::PgPool;
use tokio::sync::watch;

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
        operations: EMPLOYEE_OPERATIONS,
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

impl Handler for State {
    async fn handle(&self, operation: &str, payload: Bytes) -> Result<Bytes, BusError> {
        use handlers::{admins, employees, keys, locations, orgs};
        let p = &payload[..];
        match operation {
            ops::OrgCreateOp::NAME => {
                dispatch::<ops::OrgCreateOp, _, _, _>(p, |r| orgs::create(self, r)).await
            }
            ops::OrgListOp::NAME => {
                dispatch::<ops::OrgListOp, _, _, _>(p, |_| orgs::list(self)).await
            }
            ops::OrgGetOp::NAME => {
                dispatch::<ops::OrgGetOp, _, _, _>(p, |r| orgs::get(self, r.org_id)).await
            }
            ops::OrgUpdateOp::NAME => {
                dispatch::<ops::OrgUpdateOp, _, _, _>(p, |r| orgs::update(self, r)).await
            }
            ops::KeyCreateOp::NAME => {
                dispatch::<ops::KeyCreateOp, _, _, _>(p, |r| keys::create(self, r)).await
            }
            ops::KeyListOp::NAME => {
                dispatch::<ops::KeyListOp, _, _, _>(p, |r| keys::list(self, r.org_id)).await
            }
            ops::KeyRevokeOp::NAME => {
                dispatch::<ops::KeyRevokeOp, _, _, _>(p, |r| keys::revoke(self, r)).await
            }
            ops::KeyVerifyOp::NAME => {
                dispatch::<ops::KeyVerifyOp, _, _, _>(p, |r| keys::verify(self, r)).await
            }
            ops::KeyTouchOp::NAME => {
                dispatch::<ops::KeyTouchOp, _, _, _>(p, |r| keys::touch(self, r)).await
            }
            ops::LocationCreateOp::NAME => {
                dispatch::<ops::LocationCreateOp, _, _, _>(p, |r| locations::create(self, r)).await
            }
            ops::LocationListOp::NAME => {
                dispatch::<ops::LocationListOp, _, _, _>(p, |r| locations::list(self, r.org_id))
                    .await
            }
            ops::EmployeeCreateOp::NAME => {
                dispatch::<ops::EmployeeCreateOp, _, _, _>(p, |r| employees::create(self, r)).await
            }
            ops::EmployeeListOp::NAME => {
                let req: ops::EmployeeList = clokio_bus::server::decode::<ops::EmployeeListOp>(p)?;
                self.lists
                    .get_or_load(req.org_id, req.status, None, || async {
                        clokio_bus::server::to_bytes(&employees::list(self, req.clone()).await?)
                    })
                    .await
            }
            ops::EmployeeGetOp::NAME => {
                dispatch::<ops::EmployeeGetOp, _, _, _>(p, |r| employees::get(self, r)).await
            }
            ops::EmployeeSetStatusOp::NAME => {
                dispatch::<ops::EmployeeSetStatusOp, _, _, _>(p, |r| employees::set_status(self, r))
                    .await
            }
            ops::EmployeePageOp::NAME => {
                dispatch::<ops::EmployeePageOp, _, _, _>(p, |r| employees::page(self, r)).await
            }
            ops::AdminCreateOp::NAME => {
                dispatch::<ops::AdminCreateOp, _, _, _>(p, |r| admins::create(self, r)).await
            }
            ops::AdminListOp::NAME => {
                dispatch::<ops::AdminListOp, _, _, _>(p, |r| admins::list(self, r.org_id)).await
            }
            ops::AdminGetOp::NAME => {
                dispatch::<ops::AdminGetOp, _, _, _>(p, |r| admins::get(self, r)).await
            }
            ops::AdminRemoveOp::NAME => {
                dispatch::<ops::AdminRemoveOp, _, _, _>(p, |r| admins::remove(self, r)).await
            }
            ops::AdminSignInOp::NAME => {
                dispatch::<ops::AdminSignInOp, _, _, _>(p, |r| admins::sign_in(self, r)).await
            }
            ops::AdminResetPasswordOp::NAME => {
                dispatch::<ops::AdminResetPasswordOp, _, _, _>(p, |r| {
                    admins::reset_password(self, r)
                })
                .await
            }
            ops::AdminSetPasswordOp::NAME => {
                dispatch::<ops::AdminSetPasswordOp, _, _, _>(p, |r| admins::set_password(self, r))
                    .await
            }
            other => Err(BusError::new(
                ErrorCode::NotFound,
                format!("Unknown operation {other}"),
            )),
        }
    }
}

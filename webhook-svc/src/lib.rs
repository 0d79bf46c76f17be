//! webhook-svc: webhook subscriptions and their deliveries. It owns the Postgres schema `webhook`,
//! answers the subscription and delivery-log API on `<prefix>.v1.webhook.<operation>`, and turns
//! attendance events into signed HTTP requests through JetStream (see [`deliver`]).

mod batch;
mod config;
mod db;
pub mod deliver;
mod delivery_log;
pub mod guard;
pub mod render;
#[doc(hidden)]
pub mod seal;
mod subs;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use clokio_bus::ids::OrgId;
use clokio_bus::ops::{self};
use clokio_bus::server::Spec;
use clokio_bus::{Bus, ServiceName, Subjects};
use clokio_runtime::cache::{OrgCache, Weigh};
use clokio_runtime::directory::Directory;
use sqlx::PgPool;

pub use config::{Config, parse_schedule};

/// An org's active subscriptions, as the intake matches events against them.
#[derive(Clone)]
pub struct ActiveSubs(Arc<Vec<subs::SubRow>>);

impl Weigh for ActiveSubs {
    fn weight(&self) -> u32 {
        64 + 1024 * self.0.len() as u32
    }
}

/// Shared state of every handler and task.
#[derive(Clone)]
pub struct State {
    pub(crate) pool: PgPool,
    pub(crate) js: jetstream::Context,
    pub(crate) subjects: Subjects,
    pub(crate) directory: Arc<Directory>,
    pub(crate) subs: Arc<OrgCache<(), ActiveSubs>>,
    pub(crate) policy: Arc<guard::Policy>,
    pub(crate) http: reqwest::Client,
    pub(crate) caps: Arc<deliver::Caps>,
    pub(crate) in_flight: Arc<deliver::InFlight>,
    pub(crate) batched: deliver::Batched,
    pub(crate) firsts: deliver::Firsts,
    pub(crate) config: Arc<Config>,
}

impl State {
    /// After a committed change of `org`'s subscriptions: every replica's cache drops them.
    pub(crate) async fn changed(&self, org: OrgId) {
        if !self.subs.invalidate(org).await {
            tracing::warn!(%org, "subscription cache invalidation not confirmed by NATS");
        }
    }

    /// The org's active subscriptions (cached). A change answered before an event happened is
    /// seen by the event's intake: its announcement reached this connection before the event.
    pub(crate) async fn active(&self, org: OrgId) -> db::Result<ActiveSubs> {
        self.subs
            .get_or_load(org, (), None, || async {
                let rows: Vec<subs::SubRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM subscriptions WHERE org_id = $1 AND active",
                    subs::COLUMNS
                ))
                .bind(org.as_uuid())
                .fetch_all(&self.pool)
                .await?;
                Ok(ActiveSubs(Arc::new(rows)))
            })
            .await
    }
}

impl std::ops::Deref for ActiveSubs {
    type Target = [subs::SubRow];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Starts webhook-svc and runs it until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    seal::install(&config.secret_key);
    let nats = clokio_runtime::connect_nats(&config.bus, "webhook-svc").await?;
    let pool = clokio_runtime::db::connect(
        &config.database_url,
        "webhook",
        config.db_max_connections,
        Duration::from_secs(30),
    )
    .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    seal::seal_stored(&pool).await?;
    let policy = Arc::new(guard::Policy {
        allow_http: config.allow_http,
        allow: config.allow_cidrs.clone(),
    });
    let http = reqwest::Client::builder()
        .timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would be the address connected to, and the guard would check it instead of the
        // receiver: webhooks go straight out, whatever HTTP(S)_PROXY says.
        .no_proxy()
        .dns_resolver(Arc::new(guard::GuardedResolver {
            policy: policy.clone(),
        }))
        // As many as a replica's attempts in flight at once (first attempts and queued ones): a
        // busy receiver's connections are kept for the next request, not closed and opened again.
        .pool_max_idle_per_host(2 * config.workers)
        .build()?;
    let bus = Bus::new(
        nats.clone(),
        config.bus.subjects.clone(),
        config.bus.request_timeout,
    );
    let directory = Arc::new(Directory::new(nats.clone(), bus).await?);
    let subs = Arc::new(
        OrgCache::new(
            "webhook_subscriptions",
            nats.clone(),
            config
                .bus
                .subjects
                .cache_invalidations(ServiceName::Webhook),
            // No fence: the intake's events arrive on this same connection, behind every
            // announcement routed here before they were stored, and the cache drains those
            // before each read. A fence was one more NATS round trip on every event's path.
            None,
        )
        .await?,
    );
    let state = State {
        pool: pool.clone(),
        js: jetstream::new(nats.clone()),
        subjects: config.bus.subjects.clone(),
        directory: directory.clone(),
        subs: subs.clone(),
        policy,
        http,
        caps: Arc::default(),
        in_flight: Arc::default(),
        batched: deliver::Batched::start(pool.clone(), subs.clone()),
        firsts: deliver::Firsts::new(config.workers),
        config: Arc::new(config.clone()),
    };
    let (intake, workers) = deliver::setup(&state).await?;
    let readiness = clokio_runtime::ops_port::Readiness::new()
        .nats(nats.clone())
        .postgres(pool.clone())
        .consumer(
            state.js.clone(),
            state.subjects.events_stream(),
            deliver::INTAKE,
        )
        .consumer(
            state.js.clone(),
            state.subjects.webhook_queue().0,
            deliver::WORKERS,
        );
    let ops = match config.ops_addr {
        Some(addr) => Some(clokio_runtime::ops_port::start(addr, "webhook-svc", readiness).await?),
        None => None,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let consumers = [
        tokio::spawn(deliver::run_intake(state.clone(), intake, stop.clone())),
        tokio::spawn(deliver::run_workers(state.clone(), workers, stop.clone())),
    ];
    let tasks = [
        tokio::spawn(async move { directory.run_sync().await }),
        tokio::spawn(async move { subs.run_sync().await }),
        tokio::spawn(deliver::sweep(pool.clone(), config.retention_days)),
        tokio::spawn(deliver::requeue_overdue(
            state.clone(),
            config.requeue_after,
            stop.clone(),
        )),
        tokio::spawn(clokio_runtime::db::upkeep(pool.clone())),
    ]
    .into_iter()
    .chain(ops);
    let spec = Spec {
        service: ServiceName::Webhook,
        description: "Webhook subscriptions and deliveries",
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
    // Stop taking events and deliveries, and finish the attempts under way (each is bounded by
    // the request timeout) before the connections close.
    stop.cancel();
    let drained = tokio::time::timeout(
        config.timeout + Duration::from_secs(2),
        futures::future::join_all(consumers),
    )
    .await;
    if drained.is_err() {
        tracing::warn!("deliveries still under way at exit; JetStream redelivers them");
    }
    for task in tasks {
        task.abort();
    }
    let _ = nats.flush().await;
    pool.close().await;
    served?;
    Ok(())
}

clokio_bus::operations! {
    State {
        ops::WebhookCreateOp => |s, r| subs::create(s, r),
        ops::WebhookUpdateOp => |s, r| subs::update(s, r),
        ops::WebhookListOp => |s, r| subs::list(s, r),
        ops::WebhookGetOp => |s, r| subs::get(s, r),
        ops::WebhookDeleteOp => |s, r| subs::delete(s, r),
        ops::WebhookRotateOp => |s, r| subs::rotate(s, r),
        ops::WebhookTestOp => |s, r| delivery_log::test(s, r),
        ops::DeliveryListOp => |s, r| delivery_log::list(s, r),
        ops::DeliveryGetOp => |s, r| delivery_log::get(s, r),
        ops::DeliveryRetryOp => |s, r| delivery_log::retry(s, r),
        ops::WebhookPreviewOp => |s, r| subs::preview(s, r),
    }
}

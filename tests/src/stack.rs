//! A stack of services under one subject prefix, started in-process, and a service on a
//! runtime of its own.

use std::net::SocketAddr;
use std::time::Duration;

use clokio_bus::ids::OrgId;
use clokio_bus::ops::{KeyCreate, KeyCreateOp, OrgCreate, OrgCreateOp, Organization};
use clokio_bus::types::{Plan, Timezone};
use clokio_bus::{Bus, ServiceName, Subjects};
use clokio_runtime::config::BusConfig;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;

use crate::{
    Events, Gateway, Tenant, database_url, free_port, json, nats_url, random_prefix, redis_url,
};

/// Services under one prefix, stopped when dropped.
pub struct Stack {
    pub bus_config: BusConfig,
    pub bus: Bus,
    pub nats: async_nats::Client,
    /// The Redis the gateway and employee-svc use (the shared one unless a test sets its own).
    pub redis_url: String,
    /// The database the services use (the shared test database unless a test sets its own).
    pub database_url: String,
    stop: watch::Sender<bool>,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Stack {
    /// An empty stack (no services yet) under a new prefix.
    pub async fn empty() -> Self {
        Self::with_timeout(Duration::from_secs(5)).await
    }

    pub async fn with_timeout(timeout: Duration) -> Self {
        Self::on(nats_url(), timeout).await
    }

    /// An empty stack on the NATS server at `url`.
    pub async fn on(url: String, timeout: Duration) -> Self {
        let bus_config = BusConfig {
            nats_url: url,
            subjects: Subjects::new(random_prefix()),
            request_timeout: timeout,
            stream_replicas: 1,
        };
        let nats = async_nats::connect(bus_config.servers())
            .await
            .expect("NATS reachable");
        let bus = Bus::new(
            nats.clone(),
            bus_config.subjects.clone(),
            bus_config.request_timeout,
        );
        let (stop, _) = watch::channel(false);
        Self {
            bus_config,
            bus,
            nats,
            redis_url: redis_url(),
            database_url: database_url(),
            stop,
            tasks: Vec::new(),
        }
    }

    /// employee-svc, attendance-svc, reporting-svc and one gateway: what most tests need.
    pub async fn start() -> (Self, Gateway) {
        let mut stack = Self::empty().await;
        stack.start_employee_svc().await;
        stack.start_attendance_svc().await;
        stack.start_reporting_svc().await;
        stack.start_webhook_svc().await;
        let gw = stack.start_gateway().await;
        (stack, gw)
    }

    pub(crate) fn stopper(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Runs a service until the stack stops and waits until one more replica of it is registered
    /// under this stack's prefix.
    async fn start_service<Fut>(&mut self, service: ServiceName, run: impl FnOnce(Stop) -> Fut)
    where
        Fut: std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>
            + Send
            + 'static,
    {
        let before = self.replicas(service).await;
        let running = run(Box::pin(self.stopper()));
        self.tasks.push(tokio::spawn(async move {
            if let Err(err) = running.await {
                panic!("{} failed: {err}", service.micro_name());
            }
        }));
        self.wait_for_replicas(service, before + 1).await;
    }

    /// An employee-svc replica's test configuration.
    pub fn employee_config(&self) -> clokio_employee_svc::Config {
        clokio_employee_svc::Config {
            bus: self.bus_config.clone(),
            database_url: self.database_url.clone(),
            db_max_connections: 5,
            max_in_flight: 64,
            ops_addr: None,
            redis_url: self.redis_url.clone(),
        }
    }

    /// Starts one employee-svc replica and waits until it is registered under this stack's prefix.
    pub async fn start_employee_svc(&mut self) {
        let config = self.employee_config();
        self.start_service(ServiceName::Employee, |stop| {
            clokio_employee_svc::run(config, stop)
        })
        .await;
    }

    /// Starts one attendance-svc replica and waits until it is registered under this stack's
    /// prefix.
    pub async fn start_attendance_svc(&mut self) {
        let config = self.attendance_config();
        self.start_attendance_svc_with(config).await;
    }

    /// [`Stack::start_attendance_svc`] with `config`.
    pub async fn start_attendance_svc_with(&mut self, config: clokio_attendance_svc::Config) {
        self.start_service(ServiceName::Attendance, |stop| {
            clokio_attendance_svc::run(config, stop)
        })
        .await;
    }

    /// reporting-svc's test configuration.
    pub fn reporting_config(&self) -> clokio_reporting_svc::Config {
        clokio_reporting_svc::Config {
            bus: self.bus_config.clone(),
            database_url: self.database_url.clone(),
            db_max_connections: 4,
            max_in_flight: 16,
            ops_addr: None,
        }
    }

    /// Starts one reporting-svc replica and waits until it is registered under this stack's
    /// prefix.
    pub async fn start_reporting_svc(&mut self) {
        let config = self.reporting_config();
        self.start_service(ServiceName::Reporting, |stop| {
            clokio_reporting_svc::run(config, stop)
        })
        .await;
    }

    /// webhook-svc for tests: loopback and plain http allowed (the capturing receiver), a short
    /// retry schedule (`0s,1s,3s`) and a 3 s ack wait.
    pub fn webhook_config(&self) -> clokio_webhook_svc::Config {
        clokio_webhook_svc::Config {
            bus: self.bus_config.clone(),
            database_url: self.database_url.clone(),
            db_max_connections: 8,
            max_in_flight: 64,
            ops_addr: None,
            schedule: clokio_webhook_svc::parse_schedule("0s,1s,3s").expect("schedule"),
            secret_key: [42; 32],
            timeout: Duration::from_secs(5),
            workers: 64,
            per_subscription: 8,
            ack_wait: Duration::from_secs(3),
            // Off, in effect: stacks share one database, and the sweep would take every other
            // test's late deliveries. A test of it gives its stack a database of its own.
            requeue_after: Duration::from_secs(30 * 24 * 3600),
            retention_days: 30,
            allow_http: true,
            allow_cidrs: vec!["127.0.0.0/8".parse().expect("cidr")],
        }
    }

    /// Starts one webhook-svc replica with `config` and waits until it is registered.
    pub async fn start_webhook_svc_with(&mut self, config: clokio_webhook_svc::Config) {
        self.start_service(ServiceName::Webhook, |stop| {
            clokio_webhook_svc::run(config, stop)
        })
        .await;
    }

    pub async fn start_webhook_svc(&mut self) {
        let config = self.webhook_config();
        self.start_webhook_svc_with(config).await;
    }

    /// A webhook-svc replica on a runtime of its own (see [`Isolated`]).
    pub fn isolated_webhook_svc(&self) -> Isolated {
        Self::isolated_webhook_svc_with(self.webhook_config())
    }

    pub fn isolated_webhook_svc_with(config: clokio_webhook_svc::Config) -> Isolated {
        Isolated::run(clokio_webhook_svc::run(config, std::future::pending()))
    }

    pub fn attendance_config(&self) -> clokio_attendance_svc::Config {
        clokio_attendance_svc::Config {
            bus: self.bus_config.clone(),
            database_url: self.database_url.clone(),
            db_max_connections: 8,
            max_in_flight: 64,
            batch_lock_wait: std::time::Duration::from_millis(50),
            ops_addr: None,
        }
    }

    /// An employee-svc replica on a runtime of its own (see [`Isolated`]).
    pub fn isolated_employee_svc(&self) -> Isolated {
        Isolated::run(clokio_employee_svc::run(
            self.employee_config(),
            std::future::pending(),
        ))
    }

    /// A reporting-svc replica on a runtime of its own (see [`Isolated`]).
    pub fn isolated_reporting_svc(&self) -> Isolated {
        let config = self.reporting_config();
        Isolated::run(clokio_reporting_svc::run(config, std::future::pending()))
    }

    /// A gateway on a runtime of its own (see [`Isolated`]), serving on the returned client's URL.
    pub fn isolated_gateway(&self) -> (Isolated, Gateway) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let config = self.gateway_config();
        let gw = Gateway::new(format!("http://{addr}")).with_ops(config.ops_addr);
        let isolated = Isolated::run(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            clokio_gateway::run(config, listener, std::future::pending()).await
        });
        (isolated, gw)
    }

    /// An attendance-svc replica on a runtime of its own, which [`Isolated::kill`] drops with
    /// every task the service spawned: a crash, as near as one process allows.
    pub fn isolated_attendance_svc(&self) -> Isolated {
        let config = self.attendance_config();
        Isolated::run(clokio_attendance_svc::run(config, std::future::pending()))
    }

    /// The `$SRV.INFO` answers of the replicas of `service` serving this stack's subjects
    /// (their metadata names the subject: other stacks on the same server register the same
    /// service name under other prefixes).
    pub async fn replica_infos(&self, service: ServiceName) -> Vec<Value> {
        let group = format!("{}.", self.bus_config.subjects.service_group(service));
        let inbox = self.nats.new_inbox();
        let Ok(mut replies) = self.nats.subscribe(inbox.clone()).await else {
            return Vec::new();
        };
        let subject = format!("$SRV.INFO.{}", service.micro_name());
        if self
            .nats
            .publish_with_reply(subject, inbox, "".into())
            .await
            .is_err()
        {
            return Vec::new();
        }
        let mut infos = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, replies.next()).await {
            let Ok(info) = serde_json::from_slice::<Value>(&msg.payload) else {
                continue;
            };
            let ours = info["metadata"]["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with(&group));
            if ours {
                infos.push(info);
            }
        }
        infos
    }

    /// How many replicas of `service` are registered under this stack's prefix.
    pub async fn replicas(&self, service: ServiceName) -> usize {
        self.replica_infos(service).await.len()
    }

    /// Waits until `n` replicas of `service` are registered under this stack's prefix (a
    /// registered replica is subscribed to its requests). A replica's start (connections,
    /// migrations, the event stream) takes a moment on a busy machine: this waits up to 60 s,
    /// and only that long because a replica that never comes up must fail the test.
    pub async fn wait_for_replicas(&self, service: ServiceName, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            if self.replicas(service).await >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{} replica {n} did not come up in 60 s",
            service.micro_name()
        );
    }

    /// A gateway with the default test configuration.
    pub async fn start_gateway(&mut self) -> Gateway {
        let config = self.gateway_config();
        self.start_gateway_with(config).await
    }

    pub fn gateway_config(&self) -> clokio_gateway::Config {
        clokio_gateway::Config {
            bus: self.bus_config.clone(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ops_addr: Some(SocketAddr::from(([127, 0, 0, 1], free_port()))),
            redis_url: self.redis_url.clone(),
            redis_timeout: Duration::from_millis(200),
            rate_limit_basic: 100,
            rate_limit_pro: 1000,
            auth_cache_ttl: Duration::from_secs(60),
            key_touch_interval: Duration::from_millis(200),
            max_body_bytes: 1024 * 1024,
            max_import_body_bytes: 16 * 1024 * 1024,
            stream_buffer: 256,
            stream_heartbeat: Duration::from_secs(15),
        }
    }

    pub async fn start_gateway_with(&mut self, config: clokio_gateway::Config) -> Gateway {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = self.stopper();
        let gw = Gateway::new(format!("http://{addr}")).with_ops(config.ops_addr);
        self.tasks.push(tokio::spawn(async move {
            if let Err(err) = clokio_gateway::run(config, listener, stop).await {
                panic!("gateway failed: {err}");
            }
        }));
        gw.wait_healthy().await;
        gw
    }

    /// A new organization, created over the bus as the operator does.
    pub async fn create_org(
        &self,
        plan: Plan,
        rate_limit: Option<u32>,
        timezone: &str,
    ) -> Organization {
        self.bus
            .call::<OrgCreateOp>(&OrgCreate {
                name: format!("Org {}", uuid::Uuid::new_v4().simple()),
                plan,
                rate_limit_per_minute: rate_limit,
                timezone: Timezone::parse(timezone).expect("timezone"),
            })
            .await
            .expect("org created")
    }

    /// A new API key for `org`; returns the secret.
    pub async fn create_key(&self, org: OrgId) -> String {
        self.bus
            .call::<KeyCreateOp>(&KeyCreate {
                org_id: org,
                name: "test".to_owned(),
                scopes: clokio_bus::scope::Scopes::FULL,
                expires_at: None,
            })
            .await
            .expect("key created")
            .key
    }

    /// An org of `plan` with a key and one location named "Main Office".
    pub async fn tenant(&self, gw: &Gateway, plan: Plan) -> Tenant {
        self.tenant_in(gw, plan, "UTC").await
    }

    /// An org of `plan` in `timezone` with a key and one location named "Main Office" (at
    /// 32.0853, 34.7818, radius 200 m).
    pub async fn tenant_in(&self, gw: &Gateway, plan: Plan, timezone: &str) -> Tenant {
        let limit = (plan == Plan::Enterprise).then_some(100_000);
        let org = self.create_org(plan, limit, timezone).await;
        let key = self.create_key(org.id).await;
        let t = Tenant { org, key };
        let res = gw
            .post(&t.key, "/api/v1/locations", &json!({
                "name": "Main Office", "latitude": 32.0853, "longitude": 34.7818, "radius_meters": 200
            }))
            .await;
        assert_eq!(res.status, 201, "{:?}", res.body);
        t
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Gives the stack a database of its own (a new one on its server), for a test whose
    /// services must not see other tests' rows: webhook-svc's overdue sweep, say, which takes
    /// every late delivery of its database. Call it before starting services.
    pub async fn own_database(&mut self) {
        use sqlx::Connection;
        let name = format!("clokio_own_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&self.database_url)
            .await
            .expect("the stack's database reachable");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("a database created");
        let (base, _) = self.database_url.rsplit_once('/').expect("a database URL");
        self.database_url = format!("{base}/{name}");
    }

    /// A pool on this stack's database.
    pub async fn db(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.database_url)
            .await
            .expect("the stack's database reachable")
    }

    /// How many events of `org` attendance-svc has published, counted once its outbox holds
    /// none of them (an outbox row is deleted when its event is published, so counting rows
    /// races the relay).
    pub async fn published_events(&self, org: OrgId) -> usize {
        use async_nats::jetstream;
        use futures::TryStreamExt;
        let db = self.db().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let pending: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM attendance.outbox WHERE subject LIKE '%.' || $1 || '.%'",
            )
            .bind(org.to_string())
            .fetch_one(&db)
            .await
            .expect("the outbox readable");
            if pending == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{pending} events of {org} never left the outbox"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let js = jetstream::new(self.nats.clone());
        let stream = js
            .get_stream(self.bus_config.subjects.events_stream())
            .await
            .expect("events stream");
        let filter = self.bus_config.subjects.event("*", org, ">");
        let subjects: Vec<(String, usize)> = stream
            .info_with_subjects(filter)
            .await
            .expect("stream info")
            .try_collect()
            .await
            .expect("stream subjects");
        subjects.iter().map(|(_, n)| n).sum()
    }

    /// Events of this stack's stream on `filter_subject`, from the beginning.
    pub async fn events(&self, filter_subject: String) -> Events {
        use async_nats::jetstream;
        let js = jetstream::new(self.nats.clone());
        let stream = js
            .get_stream(self.bus_config.subjects.events_stream())
            .await
            .expect("events stream");
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                filter_subject,
                ..Default::default()
            })
            .await
            .expect("consumer created");
        Events(consumer.messages().await.expect("consumer messages"))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
        // Delete this stack's streams, and the outbox rows its relays had not yet published, so
        // test runs do not pile them up on the shared servers. Drop cannot await, so a
        // short-lived thread with its own runtime does it.
        let (database_url, prefix) = (
            self.database_url.clone(),
            self.bus_config.subjects.prefix().to_string(),
        );
        let (servers, streams) = (
            self.bus_config.servers(),
            [
                self.bus_config.subjects.events_stream(),
                self.bus_config.subjects.webhook_queue().0,
            ],
        );
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let delete = async {
                    let client = async_nats::connect(servers).await.ok()?;
                    let js = async_nats::jetstream::new(client);
                    for stream in streams {
                        let _ = js.delete_stream(stream).await;
                    }
                    Some(())
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), delete).await;
                let purge = async {
                    let db = sqlx::PgPool::connect(&database_url).await.ok()?;
                    for schema in ["attendance", "employee"] {
                        let _ = sqlx::query(&format!(
                            "DELETE FROM {schema}.outbox WHERE split_part(subject, '.', 1) = $1"
                        ))
                        .bind(&prefix)
                        .execute(&db)
                        .await;
                    }
                    db.close().await;
                    Some(())
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), purge).await;
            });
        });
        let _ = cleanup.join();
    }
}

/// A service running on its own runtime (see [`Stack::isolated_attendance_svc`]).
pub struct Isolated(Option<tokio::runtime::Runtime>);

impl Isolated {
    fn run(
        service: impl std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static,
    ) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.spawn(async move {
            if let Err(err) = service.await {
                eprintln!("service failed: {err}");
            }
        });
        Self(Some(rt))
    }

    /// Stops every task of the service at its next await, without any shutdown of its own.
    pub fn kill(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a service started by a stack runs until.
type Stop = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

//! Test kit: boots Clokio services in-process against the real Postgres, Redis and NATS, each
//! stack under a random subject prefix (so parallel tests never see each other's messages or rate
//! limit counters), and drives the gateway over HTTP like a client.
//!
//! Servers come from `CLOKIO_TEST_DATABASE_URL`, `CLOKIO_NATS_URL`, `CLOKIO_REDIS_URL`
//! (defaults: the local servers that `deploy/local/test.sh` makes sure of).

mod console;
mod cut;
mod sse;

pub use console::{ADMIN_PASSWORD, Browser, Console, Page, html_escape};
pub use cut::{Cut, CutProxy};
pub use sse::{EventStream, Frame};

use std::net::SocketAddr;
use std::time::Duration;

use clokio_bus::ids::OrgId;
use clokio_bus::ops::{KeyCreate, KeyCreateOp, OrgCreate, OrgCreateOp, Organization};
use clokio_bus::types::{Plan, Timezone};
use clokio_bus::{Bus, Prefix, ServiceName, Subjects};
use clokio_runtime::config::BusConfig;
use futures::StreamExt;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::sync::watch;

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
    tasks: Vec<tokio::task::JoinHandle<()>>,
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

    fn stopper(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
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
        self.start_service(ServiceName::Attendance, |stop| {
            clokio_attendance_svc::run(config, stop)
        })
        .await;
    }

    /// Starts one reporting-svc replica and waits until it is registered under this stack's
    /// prefix.
    pub async fn start_reporting_svc(&mut self) {
        let config = clokio_reporting_svc::Config {
            bus: self.bus_config.clone(),
            database_url: self.database_url.clone(),
            db_max_connections: 4,
            max_in_flight: 16,
            ops_addr: None,
        };
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
        let config = clokio_reporting_svc::Config {
            bus: self.bus_config.clone(),
            database_url: self.database_url.clone(),
            db_max_connections: 4,
            max_in_flight: 16,
            ops_addr: None,
        };
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

/// Inserts `n` employees (`{prefix}00001`, …) straight into employee-svc's tables, at the org's
/// first location: creating thousands through the API would spend minutes hashing passwords.
pub async fn seed_employees(org: OrgId, prefix: &str, n: i32, hire_date: &str) {
    sqlx::query(
        "INSERT INTO employee.employees (org_id, employee_code, name, email, location_id, password_hash, hire_date) \
         SELECT $1, $3 || lpad(i::text, 5, '0'), 'Employee ' || i, $3 || i || '@example.com', \
            (SELECT min(id) FROM employee.locations WHERE org_id = $1), 'x', $4::date \
         FROM generate_series(1, $2) AS i",
    )
    .bind(org.as_uuid())
    .bind(n)
    .bind(prefix)
    .bind(hire_date)
    .execute(&db().await)
    .await
    .expect("employees seeded");
}

/// An organization and one of its keys.
pub struct Tenant {
    pub org: Organization,
    pub key: String,
}

/// An HTTP client bound to one gateway.
#[derive(Clone)]
pub struct Gateway {
    pub url: String,
    /// The ops port's base URL.
    pub ops: Option<String>,
    pub client: reqwest::Client,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Res {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// Asserts status and the envelope's shape, then returns self.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        let want = if status < 400 { "success" } else { "error" };
        assert_eq!(
            self.body["status"], want,
            "envelope status; body: {}",
            self.text
        );
        assert!(
            self.body["message"].is_string(),
            "envelope message; body: {}",
            self.text
        );
        if status >= 400 {
            assert!(
                self.body["data"].is_null(),
                "error data must be null; body: {}",
                self.text
            );
        }
        self
    }

    /// Asserts an error status and its exact message.
    #[track_caller]
    pub fn expect_error(self, status: u16, message: &str) -> Self {
        let res = self.expect(status);
        assert_eq!(res.message(), message, "body: {}", res.text);
        res
    }
}

impl Gateway {
    pub fn new(url: String) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        Self {
            url,
            ops: None,
            client,
        }
    }

    /// The gateway's ops port (`/metrics`), when it serves one.
    pub fn with_ops(mut self, addr: Option<SocketAddr>) -> Self {
        self.ops = addr.map(|a| format!("http://{a}"));
        self
    }

    /// Waits (up to 5 s) until the gateway answers `/healthz`.
    pub async fn wait_healthy(&self) {
        wait_healthy(&self.client, &self.url, "gateway").await;
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Res {
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        key: Option<&str>,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let mut req = self.client.request(method, format!("{}{}", self.url, path));
        if let Some(key) = key {
            req = req.header("X-API-Key", key);
        }
        req
    }

    pub async fn get(&self, key: &str, path: &str) -> Res {
        self.send(self.request(reqwest::Method::GET, Some(key), path))
            .await
    }

    pub async fn post(&self, key: &str, path: &str, body: &Value) -> Res {
        self.send(
            self.request(reqwest::Method::POST, Some(key), path)
                .json(body),
        )
        .await
    }

    pub async fn patch(&self, key: &str, path: &str, body: &Value) -> Res {
        self.send(
            self.request(reqwest::Method::PATCH, Some(key), path)
                .json(body),
        )
        .await
    }

    /// What the ops port's `/metrics` serves now.
    pub async fn metrics(&self) -> Metrics {
        let ops = self.ops.as_deref().expect("a gateway with an ops port");
        let res = self
            .client
            .get(format!("{ops}/metrics"))
            .send()
            .await
            .expect("metrics");
        Metrics(res.text().await.expect("metrics text"))
    }

    pub async fn delete(&self, key: &str, path: &str) -> Res {
        self.send(self.request(reqwest::Method::DELETE, Some(key), path))
            .await
    }

    /// Creates an employee at "Main Office" and returns its data.
    pub async fn create_employee(&self, key: &str, name: &str, extra: Value) -> Value {
        let mut body = json!({
            "name": name,
            "email": format!("{}@company.com", uuid::Uuid::new_v4().simple()),
            "location": "Main Office",
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let res = self.post(key, "/api/v1/employees", &body).await.expect(201);
        res.data().clone()
    }
}

/// Waits (up to 5 s) until the server at `url` answers `/healthz`.
async fn wait_healthy(client: &reqwest::Client, url: &str, what: &str) {
    for _ in 0..200 {
        if client.get(format!("{url}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} did not come up");
}

/// A port nothing listens on now, for a server the test starts later.
///
/// It is drawn at random from below the kernel's ephemeral range, which `bind(0)` listeners and
/// outgoing connections take their ports from: a port from there could be taken by a parallel
/// test between this check and the server's own bind (one ops port once answered with another
/// test's gateway). Parallel test processes rarely draw the same port, and one process never
/// hands a port out twice.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = (low.saturating_sub(20_000).max(1024), low);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let draw = uuid::Uuid::new_v4().as_u128() % u128::from(to.saturating_sub(from).max(1));
        let port = from + u16::try_from(draw).expect("below the range's width");
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port below {low}");
}

/// Waits until a server of the test's own accepts connections on `port`.
async fn wait_listening(port: u16, name: &str) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} did not listen on {port}");
}

/// Kills a server of the test's own (SIGKILL) and waits for it to exit.
fn kill_child(child: &mut Option<std::process::Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A PostgreSQL server of the test's own (a fresh cluster on a free port with a `clokio`
/// superuser and database, trust auth, no fsync), for tests that must stop it. Stopped when
/// dropped. Run as root, it runs the server as the `postgres` user, as PostgreSQL requires.
pub struct PgServer {
    pub port: u16,
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
}

impl PgServer {
    pub async fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries in /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .expect("initdb");
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("clokio-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("data dir");
        let server = Self { port, dir, bin };
        server.as_owner(&["chown", "-R"]);
        let initdb = server.bin.join("initdb");
        let data = server.dir.join("data");
        server.run(&[
            initdb.to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-U",
            "clokio",
            "--auth=trust",
            "-E",
            "UTF8",
        ]);
        server.restart().await;
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&format!(
            "postgres://clokio@127.0.0.1:{}/postgres",
            server.port
        ))
        .await
        .expect("own postgres reachable");
        sqlx::query("CREATE DATABASE clokio")
            .execute(&mut admin)
            .await
            .expect("database created");
        server
    }

    pub fn url(&self) -> String {
        format!("postgres://clokio@127.0.0.1:{}/clokio", self.port)
    }

    fn root() -> bool {
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"))
    }

    /// `chown -R postgres: <dir>` when running as root (PostgreSQL refuses to run as root).
    fn as_owner(&self, chown: &[&str]) {
        if Self::root() {
            let status = std::process::Command::new(chown[0])
                .args(&chown[1..])
                .arg("postgres:postgres")
                .arg(&self.dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the data dir");
        }
    }

    /// Runs a PostgreSQL program, as the `postgres` user when root.
    fn run(&self, args: &[&str]) {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn output(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = if Self::root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]);
            c.args(args);
            c
        } else {
            let mut c = std::process::Command::new(args[0]);
            c.args(&args[1..]);
            c
        };
        cmd.output().expect("a PostgreSQL program runs")
    }

    fn pg_ctl_args(&self, action: &[&str]) -> Vec<String> {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let mut args: Vec<String> = vec![
            pg_ctl.display().to_string(),
            "-D".into(),
            data.display().to_string(),
            "-l".into(),
            log.display().to_string(),
            "-o".into(),
            options,
            "-w".into(),
        ];
        args.extend(action.iter().map(|a| a.to_string()));
        args
    }

    fn pg_ctl(&self, action: &[&str]) {
        let args = self.pg_ctl_args(action);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args);
    }

    /// Starts the server (again) on the same port and data, and waits until it accepts.
    pub async fn restart(&self) {
        self.pg_ctl(&["start"]);
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`: no checkpoint).
    pub fn kill(&self) {
        self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let args = self.pg_ctl_args(&["-m", "immediate", "stop"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = self.output(&args);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A redis-server of the test's own (a free port, nothing kept on disk), for tests that must
/// stop it. Killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = free_port();
        let mut server = Self { port, child: None };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port, and waits until it accepts.
    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        wait_listening(self.port, "redis-server").await;
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A nats-server of the test's own (JetStream on, a free port, a temporary store), for tests that
/// must stop the server. Killed when dropped.
pub struct NatsServer {
    pub port: u16,
    dir: std::path::PathBuf,
    /// Cluster options, for a node of a [`NatsCluster`].
    cluster: Vec<String>,
    /// Off for a node that only routes (the edge of [`LinkedNats`]).
    jetstream: bool,
    child: Option<std::process::Child>,
}

impl NatsServer {
    pub async fn start() -> Self {
        let mut server = Self::new(Vec::new());
        server.restart().await;
        server
    }

    fn new(cluster: Vec<String>) -> Self {
        Self {
            port: free_port(),
            dir: std::env::temp_dir()
                .join(format!("clokio-nats-{}", uuid::Uuid::new_v4().simple())),
            cluster,
            jetstream: true,
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and store, and waits until it accepts.
    pub async fn restart(&mut self) {
        let bin = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server");
        let child = std::process::Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.dir)
            .args(self.jetstream.then_some("-js"))
            .args(&self.cluster)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        wait_listening(self.port, "nats-server").await;
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A NATS cluster of the test's own, as production runs it: `n` nodes on free ports, routed to
/// each other, JetStream on each with its own store. Killed when dropped.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    pub async fn start(n: usize) -> Self {
        let route_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let name = format!("clokio-test-{}", uuid::Uuid::new_v4().simple());
        let mut nodes: Vec<NatsServer> = route_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                NatsServer::new(cluster_node(
                    &format!("n{}", i + 1),
                    &name,
                    *port,
                    &route_ports,
                ))
            })
            .collect();
        for node in &mut nodes {
            node.restart().await;
        }
        let cluster = Self { nodes };
        cluster.wait_jetstream().await;
        cluster
    }

    /// Every node's URL, comma-separated: a `CLOKIO_NATS_URL` for the whole cluster.
    pub fn url(&self) -> String {
        urls(&self.nodes)
    }

    /// Waits until the cluster can hold a stream with a copy on every node: its JetStream meta
    /// group has a leader and every node has joined it.
    pub async fn wait_jetstream(&self) {
        wait_jetstream(&self.url(), self.nodes.len()).await;
    }
}

/// The options of a cluster node named `server` in cluster `cluster`, taking routes on `port` and
/// routing to `routes` (itself among them or not: a node skips its own).
fn cluster_node(server: &str, cluster: &str, port: u16, routes: &[u16]) -> Vec<String> {
    let routes = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        "--server_name".to_owned(),
        server.to_owned(),
        "--cluster_name".to_owned(),
        cluster.to_owned(),
        "--cluster".to_owned(),
        format!("nats://127.0.0.1:{port}"),
        "--routes".to_owned(),
        routes,
    ]
}

/// The servers' URLs, comma-separated: a `CLOKIO_NATS_URL` for all of them.
fn urls(servers: &[NatsServer]) -> String {
    servers
        .iter()
        .map(NatsServer::url)
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits until the NATS servers at `url` can hold a stream of `replicas` copies.
async fn wait_jetstream(url: &str, replicas: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let client = async_nats::connect(clokio_runtime::config::nats_servers(url).expect("node URLs"))
        .await
        .expect("a node accepts");
    let js = async_nats::jetstream::new(client);
    let name = format!("CLOKIO-PROBE-{}", uuid::Uuid::new_v4().simple());
    loop {
        let created = js
            .create_stream(async_nats::jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![format!("probe.{name}")],
                storage: async_nats::jetstream::stream::StorageType::Memory,
                num_replicas: replicas,
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => break,
            Err(err) => assert!(
                std::time::Instant::now() < deadline,
                "the cluster's JetStream did not come up: {err}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = js.delete_stream(&name).await;
}

/// A NATS cluster of the test's own whose third node is reached only through proxies the test can
/// hold down: two `hubs` run JetStream (the services connect to them), the `edge` only routes.
/// While the links are down a client of the edge keeps its connection but gets nothing published
/// at the hubs, as a client of one cluster node does while its routes flap.
pub struct LinkedNats {
    pub hubs: Vec<NatsServer>,
    pub edge: NatsServer,
    links: Vec<CutProxy>,
    /// The edge's monitoring port (`/routez`).
    edge_monitor: u16,
}

impl LinkedNats {
    pub async fn start() -> Self {
        let hub_routes = [free_port(), free_port()];
        let edge_monitor = free_port();
        let mut links = Vec::new();
        for port in hub_routes {
            links.push(CutProxy::start(SocketAddr::from(([127, 0, 0, 1], port))).await);
        }
        let name = format!("clokio-test-{}", uuid::Uuid::new_v4().simple());
        let mut hubs: Vec<NatsServer> = hub_routes
            .iter()
            .enumerate()
            .map(|(i, port)| {
                NatsServer::new(cluster_node(
                    &format!("hub{}", i + 1),
                    &name,
                    *port,
                    &hub_routes,
                ))
            })
            .collect();
        let link_ports: Vec<u16> = links.iter().map(|l| l.port).collect();
        let mut edge_args = cluster_node("edge", &name, free_port(), &link_ports);
        edge_args.extend([
            // Told to nobody reachable, so no hub routes to the edge around the proxies.
            "--cluster_advertise".to_owned(),
            "127.0.0.1:1".to_owned(),
            "-m".to_owned(),
            edge_monitor.to_string(),
        ]);
        let mut edge = NatsServer::new(edge_args);
        edge.jetstream = false;
        for hub in &mut hubs {
            hub.restart().await;
        }
        edge.restart().await;
        let cluster = Self {
            hubs,
            edge,
            links,
            edge_monitor,
        };
        cluster.wait_routes(2).await;
        wait_jetstream(&cluster.edge.url(), 1).await;
        cluster
    }

    /// The hubs' URLs, comma-separated.
    pub fn hub_url(&self) -> String {
        urls(&self.hubs)
    }

    /// Takes the edge's links down (`false`) or brings them back (`true`), and waits until the
    /// edge says its routes to the hubs are gone or back.
    pub async fn links(&self, up: bool) {
        for link in &self.links {
            link.hold_down(!up);
        }
        self.wait_routes(if up { self.hubs.len() } else { 0 }).await;
    }

    async fn wait_routes(&self, n: usize) {
        let url = format!("http://127.0.0.1:{}/routez", self.edge_monitor);
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let routes = match http.get(&url).send().await {
                Ok(res) => res.json::<Value>().await.ok(),
                Err(_) => None,
            }
            .and_then(|v| v["num_routes"].as_u64());
            if routes == Some(n as u64) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the edge's routes did not become {n} (last seen {routes:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The Prometheus text a gateway's `/metrics` served.
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the first sample whose line starts with `series` (name plus labels as the
    /// exporter writes them, e.g. `clokio_auth_cache_total{result="hit"}`).
    #[track_caller]
    pub fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing from /metrics:\n{}", self.0))
    }

    pub fn contains(&self, text: &str) -> bool {
        self.0.contains(text)
    }
}

/// One event read from the stack's events stream.
pub struct ReceivedEvent {
    pub subject: String,
    pub body: Value,
    /// The `Nats-Msg-Id` header (the de-duplication id).
    pub msg_id: String,
}

/// A consumer of the stack's events stream, from its beginning, on one filter subject.
pub struct Events(async_nats::jetstream::consumer::pull::Stream);

impl Events {
    /// The next event (acknowledged); panics after 5 s without one.
    pub async fn next(&mut self) -> ReceivedEvent {
        self.next_within(Duration::from_secs(5))
            .await
            .expect("an event within 5 s")
    }

    /// The next event (acknowledged), or `None` when none arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<ReceivedEvent> {
        let msg = tokio::time::timeout(wait, self.0.next())
            .await
            .ok()?
            .expect("consumer open")
            .expect("event readable");
        let _ = msg.ack().await;
        Some(ReceivedEvent {
            subject: msg.subject.to_string(),
            body: serde_json::from_slice(&msg.payload).expect("event is JSON"),
            msg_id: msg
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default(),
        })
    }

    /// True when no further event arrives within `wait`.
    pub async fn none_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.0.next()).await.is_err()
    }
}

/// A pool on the test database, for asserting what services stored.
pub async fn db() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database_url())
        .await
        .expect("test database reachable")
}

/// One request a [`Receiver`] took.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: std::time::Instant,
    pub path: String,
    pub headers: axum::http::HeaderMap,
    pub body: axum::body::Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// How a [`Receiver`] answers one request.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
    pub body: String,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
            body: "ok".to_owned(),
        }
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    script: std::collections::VecDeque<Answer>,
}

/// A capturing HTTP receiver for webhook tests: records every request and answers as scripted
/// (200 when nothing is scripted). Stops with the test.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: std::sync::Arc<std::sync::Mutex<ReceiverState>>,
    arrived: std::sync::Arc<tokio::sync::Notify>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let receiver = Self {
            url,
            state: std::sync::Arc::default(),
            arrived: std::sync::Arc::default(),
        };
        let r = receiver.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let r = r.clone();
                async move {
                    let answer = {
                        let mut s = r.state.lock().unwrap();
                        s.received.push(Received {
                            at: std::time::Instant::now(),
                            path: uri.path().to_owned(),
                            headers,
                            body,
                        });
                        s.script.pop_front()
                    };
                    r.arrived.notify_waiters();
                    let answer = answer.unwrap_or_else(|| Answer::status(200));
                    tokio::time::sleep(answer.delay).await;
                    let mut res =
                        axum::response::Response::new(axum::body::Body::from(answer.body));
                    *res.status_mut() =
                        axum::http::StatusCode::from_u16(answer.status).expect("status");
                    for (k, v) in answer.headers {
                        res.headers_mut().insert(
                            axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                            axum::http::HeaderValue::from_str(&v).expect("value"),
                        );
                    }
                    res
                }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver
    }

    /// Scripts the next answers, in order.
    pub fn answer(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.lock().unwrap().script.extend(answers);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Waits until `n` requests have arrived (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.received();
                assert!(
                    got.len() >= n,
                    "{} of {n} requests within {within:?}",
                    got.len()
                );
                return got;
            }
        }
    }
}

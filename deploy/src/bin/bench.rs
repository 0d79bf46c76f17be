//! clokio-bench: benchmarks run against a live installation (`deploy/local/bench.sh` starts one
//! with release builds). Its scenarios:
//!
//! - `read` (default): the gateway's read path against `/healthz`, described below.
//! - `clock`: clock-in/clock-out cycles across 1,000 employees (`--employees`), closed loop;
//!   clock events per second, against `/healthz` and single-row `INSERT`s into the same Postgres
//!   (16 connections), both in the same run. The timed phase starts after every employee has
//!   clocked in once, and the `INSERT`s once the stack has worked off the clock phase's events.
//! - `daily`: the daily report of an org of 10,000 employees (`--employees`) who all attended,
//!   against the same report for a date nobody attended (the fixed cost of the path).
//! - `summary`: the monthly summary of an org of 10,000 employees × 22 work days (220,000
//!   sessions), as JSON against the same summary of a month without sessions, and as CSV with
//!   the peak memory of the gateway and reporting-svc before and after.
//! - `webhook`: clock events with 10 generic webhooks each, delivered to a receiver in this
//!   process: deliveries per second and the time from each event's 2xx to its delivery's arrival.
//! - `console`: the admin console's Employees page (10,000 employees) and Today (1,000) against a
//!   static asset it serves, and 100 live boards receiving clock-ins (`src/bench/console.rs`).
//! - `stream`: 100 event streams receiving 200 clock events/s, and the gateway's memory per idle
//!   stream with 1,000 open (`src/bench/stream.rs`).
//! - `scaling`: how cost grows with the org: daily report and monthly summary at 1,000, 10,000
//!   and 50,000 employees with the peak memory of the services on their path, clock events at 1,
//!   16, 64 and 256 connections, webhook deliveries with 1, 10 and 100 subscriptions
//!   (`--hooks`); written as the "How cost grows" section of `docs/benchmarks.md`.
//! - `all`: every scenario above at its standard size (read path; clock at 1,000 employees; daily
//!   at 10,000 and 20,000; summary at 10,000; webhooks at 1,000 deliveries/s offered) plus each
//!   service's resident memory idle (before) and its peak (after), written as one markdown table
//!   to `docs/benchmarks.md` with the machine and the date.
//! - `soak`: a steady mixed load for `--minutes` (default 10), a row per minute, failing unless
//!   it stays flat (`src/bench/soak.rs`; not part of `all`).
//!
//! Orgs of 500 employees or more are seeded straight into employee-svc's table (argon2 hashing
//! 10,000 passwords through the API would take minutes and measure nothing of interest); the
//! sessions still go in through the public import API.
//!
//! Read path: with the same HTTP client and concurrency in one run it loads `GET /healthz` (the bare HTTP
//! baseline) and an authenticated `GET /api/v1/employees` (API key auth, the Redis limiter script,
//! a NATS round trip to employee-svc and its query) for an enterprise org with 50 employees, and
//! prints throughput, p50/p99 and the read/health ratio; then it offers the read path a fixed
//! 1,000 requests/second and reports the latency it sees (measured from each request's scheduled
//! send time, so a stall is not hidden by the load generator waiting), beside `GET /healthz` at
//! the same rate as the machine's floor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

// One module per scenario (`deploy/src/bench/`); what they share stays here.
#[path = "../bench/all.rs"]
mod all;
#[path = "../bench/clock.rs"]
mod clock;
#[path = "../bench/console.rs"]
mod console;
#[path = "../bench/daily.rs"]
mod daily;
#[path = "../bench/read.rs"]
mod read;
#[path = "../bench/soak.rs"]
mod soak;
#[path = "../bench/stream.rs"]
mod stream;
#[path = "../bench/summary.rs"]
mod summary;
#[path = "../bench/webhook.rs"]
mod webhook;
use clokio_bus::Bus;
use clokio_bus::ops::{KeyCreate, KeyCreateOp, OrgCreate, OrgCreateOp};
use clokio_bus::scope::Scopes;
use clokio_bus::types::{Plan, Timezone};
use clokio_runtime::config::BusConfig;

use all::Report;

impl Args {
    /// These arguments at another size.
    fn sized(&self, employees: usize, concurrency: usize, rate: u64) -> Self {
        Self {
            employees,
            concurrency,
            rate,
            ..self.clone()
        }
    }
}

#[derive(Parser, Clone)]
#[command(
    name = "clokio-bench",
    about = "Benchmark the gateway read path against /healthz"
)]
struct Args {
    /// Gateway base URL.
    #[arg(long, env = "CLOKIO_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent connections for the closed-loop phases.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests per second offered in the fixed-rate phase.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Employees in the benchmark org.
    #[arg(long, default_value_t = 50)]
    employees: usize,
    /// How long the `soak` scenario runs (at least 3).
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Webhooks subscribed to every clock event (the `webhook` scenario).
    #[arg(long, default_value_t = 10)]
    hooks: usize,
    /// The authenticated path to load (for profiling other read routes).
    #[arg(long, default_value = "/api/v1/employees")]
    path: String,
    /// Count any HTTP answer as a success (to profile paths that end in a 4xx on purpose).
    #[arg(long)]
    any_status: bool,
    /// What to run (the module docs describe each).
    #[arg(long, value_enum, default_value_t = Scenario::Read)]
    scenario: Scenario,
    /// The admin console's base URL (the `console` scenario).
    #[arg(
        long,
        env = "CLOKIO_CONSOLE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    console_url: String,
}

/// The scenarios, each in its own module.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Read,
    Clock,
    Daily,
    Summary,
    Webhook,
    Console,
    Stream,
    Paging,
    Soak,
    All,
    Scaling,
}

static ANY_STATUS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn accepted(status: reqwest::StatusCode) -> bool {
    status.is_success() || ANY_STATUS.load(std::sync::atomic::Ordering::Relaxed)
}

struct Phase {
    name: String,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Phase {
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    fn row(&self) -> String {
        format!(
            "| {:<34} | {:>9} | {:>6} | {:>10.0} | {:>8.2} | {:>8.2} |",
            self.name,
            self.requests,
            self.errors,
            self.throughput(),
            self.percentile(0.50),
            self.percentile(0.99)
        )
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    ANY_STATUS.store(args.any_status, std::sync::atomic::Ordering::Relaxed);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(10))
        .build()?;
    // A scenario run on its own prints its tables; only `all` and `scaling` write their report.
    let report = &mut Report::default();
    match args.scenario {
        Scenario::Read => read::read_bench(&args, &client, report).await,
        Scenario::Clock => clock::clock_bench(&args, &client, report).await,
        Scenario::Daily => daily::daily_bench(&args, &client, report).await,
        Scenario::Summary => summary::summary_bench(&args, &client, report).await,
        Scenario::Webhook => webhook::webhook_bench(&args, &client, report).await,
        Scenario::Console => console::console_bench(&args, &client, report).await,
        Scenario::Stream => stream::stream_bench(&args, &client, report).await,
        Scenario::Paging => read::paging_bench(&args, &client).await,
        Scenario::Soak => soak::soak_bench(&args, &client).await,
        Scenario::All => all::all(&args, &client).await,
        Scenario::Scaling => all::scaling(&args, &client).await,
    }
}

const SERVICES: [&str; 6] = [
    "gateway",
    "employee-svc",
    "attendance-svc",
    "webhook-svc",
    "reporting-svc",
    "console",
];

/// Subscribes `n` generic webhooks of every clock-in and clock-out to `receiver`.
async fn subscribe(
    args: &Args,
    client: &reqwest::Client,
    key: &str,
    receiver: &str,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..n {
        let res = client
            .post(format!("{}/api/v1/webhooks", args.url))
            .header("X-API-Key", key)
            .json(&serde_json::json!({"url": receiver, "events": ["clock-in", "clock-out"]}))
            .send()
            .await?;
        if res.status() != 201 {
            return Err(format!(
                "creating a webhook failed (is CLOKIO_WEBHOOK_ALLOW_CIDRS set for loopback?): {}",
                res.text().await?
            )
            .into());
        }
    }
    Ok(())
}

/// Writes `text` into `docs/benchmarks.md`: as the part above the first `## ` heading (the `all`
/// table) when `heading` is `None`, else as the section under `heading` (up to the next `## `),
/// added at the end if missing. The rest of the file stays.
fn write_doc(heading: Option<&str>, text: &str) -> std::io::Result<()> {
    const PATH: &str = "docs/benchmarks.md";
    let doc = std::fs::read_to_string(PATH).unwrap_or_default();
    let mut pieces = doc.split("\n## ");
    let mut parts: Vec<String> = vec![pieces.next().unwrap_or_default().to_owned()];
    parts.extend(pieces.map(|p| format!("## {p}")));
    let at = match heading {
        None => Some(0),
        Some(h) => parts.iter().position(|p| p.starts_with(h)),
    };
    match at {
        Some(i) => parts[i] = text.to_owned(),
        None => parts.push(text.to_owned()),
    }
    std::fs::create_dir_all("docs")?;
    let parts: Vec<&str> = parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    std::fs::write(PATH, format!("{}\n", parts.join("\n\n")))
}

/// The bare HTTP baseline: `GET /healthz` at the run's concurrency for its seconds, after a
/// second of warm-up.
async fn healthz_baseline(args: &Args, client: &reqwest::Client) -> Phase {
    let healthz = format!("{}/healthz", args.url);
    closed_loop(
        "warm-up",
        client,
        &healthz,
        None,
        args.concurrency,
        Duration::from_secs(1),
    )
    .await;
    closed_loop(
        "GET /healthz",
        client,
        &healthz,
        None,
        args.concurrency,
        Duration::from_secs(args.seconds),
    )
    .await
}

/// The key of an org an earlier run kept in `state`, when `still_good` finds the org as that run
/// left it (seeding 10,000 employees and their sessions takes minutes).
async fn kept_org<F, Fut>(state: &std::path::Path, still_good: F) -> Option<String>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let key = std::fs::read_to_string(state).ok()?.trim().to_owned();
    if !still_good(key.clone()).await {
        return None;
    }
    eprintln!("reusing the org in {}", state.display());
    Some(key)
}

/// Keeps an org's key in `state` for the next run.
fn keep_org(state: &std::path::Path, key: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(".clokio")?;
    std::fs::write(state, key)
}

/// Imports one session on `day` for each of the first `n` seeded employees (`B00000`…), 5,000
/// records a request: in at 08:(i mod `spread`), a half-hour break at noon, out at 17:(7i mod 60).
async fn import_day(
    args: &Args,
    client: &reqwest::Client,
    key: &str,
    day: &str,
    n: usize,
    spread: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let records: Vec<serde_json::Value> = chunk
            .iter()
            .map(|i| {
                serde_json::json!({
                    "nip": format!("B{i:05}"),
                    "clock_in": format!("{day}T08:{:02}:00Z", i % spread),
                    "clock_out": format!("{day}T17:{:02}:00Z", (i * 7) % 60),
                    "breaks": [{"start": format!("{day}T12:00:00Z"), "end": format!("{day}T12:30:00Z")}],
                })
            })
            .collect();
        let res = client
            .post(format!("{}/api/v1/attendance/import", args.url))
            .header("X-API-Key", key)
            .json(&serde_json::json!({ "records": records }))
            .send()
            .await?;
        if res.status() != 201 {
            return Err(format!("import failed: {}", res.text().await?).into());
        }
    }
    Ok(())
}

/// The machine and the date, for the report.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_owned(), |m| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1048576.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "Machine: {cores} cores ({model}), {mem_gib:.0} GiB, Linux {}; PostgreSQL, Redis and NATS on \
         the same machine. Run: {date}.",
        kernel.trim()
    )
}

/// An enterprise org with a generous limit (the limiter still runs on every request), a location
/// and `args.employees` employees (codes `B00000`, `B00001`, …), created `args.concurrency` at a
/// time.
async fn setup(
    args: &Args,
    client: &reqwest::Client,
) -> Result<String, Box<dyn std::error::Error>> {
    let config = BusConfig::from_env()?;
    let nats = async_nats::connect(config.servers()).await?;
    let bus = Bus::new(nats, config.subjects, config.request_timeout);
    let org = bus
        .call::<OrgCreateOp>(&OrgCreate {
            name: format!("Bench {}", chrono_free_stamp()),
            plan: Plan::Enterprise,
            rate_limit_per_minute: Some(100_000_000),
            timezone: Timezone::parse("UTC")?,
        })
        .await?;
    let key = bus
        .call::<KeyCreateOp>(&KeyCreate {
            org_id: org.id,
            name: "bench".to_owned(),
            scopes: Scopes::FULL,
            expires_at: None,
        })
        .await?
        .key;
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{}{path}", args.url))
            .header("X-API-Key", &key)
            .json(&body)
            .send()
    };
    let res = post(
        "/api/v1/locations",
        serde_json::json!({
            "name": "Bench HQ", "latitude": 52.52, "longitude": 13.40, "radius_meters": 150
        }),
    )
    .await?;
    if res.status() != 201 {
        return Err(format!("creating the location failed: {}", res.text().await?).into());
    }
    if args.employees >= SEED_IN_SQL_FROM {
        seed(org.id, args.employees).await?;
        return Ok(key);
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers = (0..args.concurrency.clamp(1, 16)).map(|_| {
        let (client, url, key, next, n) = (
            client.clone(),
            args.url.clone(),
            key.clone(),
            next.clone(),
            args.employees,
        );
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), String>(());
                }
                let res = client
                    .post(format!("{url}/api/v1/employees"))
                    .header("X-API-Key", &key)
                    .json(&serde_json::json!({
                        "name": format!("Bench Employee {i}"),
                        "email": format!("bench{i}@example.com"),
                        "employee_code": format!("B{i:05}"),
                        "location": "Bench HQ",
                        "department": "Benchmarks",
                        "password": "benchmark-password",
                        "hire_date": "2025-01-01",
                    }))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if res.status() != 201 {
                    return Err(format!(
                        "creating employee {i} failed: {}",
                        res.text().await.unwrap_or_default()
                    ));
                }
            }
        })
    });
    for w in futures_join(workers.collect()).await {
        w?;
    }
    Ok(key)
}

/// Orgs this large get their employees straight into employee-svc's table.
const SEED_IN_SQL_FROM: usize = 500;

/// `n` employees `B00000`… of `org` at its one location, as the API would create them but
/// without a password (nobody logs in as them).
async fn seed(org: clokio_bus::ids::OrgId, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    use sqlx::Connection;
    let url = clokio_runtime::config::database_url("CLOKIO_EMPLOYEE_DATABASE_URL");
    let mut db = sqlx::PgConnection::connect(&url).await?;
    clokio_employee_svc::seed::Seed {
        org,
        code_prefix: "B",
        first: 0,
        n: i32::try_from(n)?,
        name: "Bench Employee",
        department: Some("Benchmarks"),
        hire_date: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).ok_or("a hire date")?,
    }
    .insert(&mut db)
    .await?;
    Ok(())
}

fn chrono_free_stamp() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

async fn closed_loop(
    name: &str,
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    concurrency: usize,
    duration: Duration,
) -> Phase {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, url, key) = (client.clone(), url.to_owned(), key.map(str::to_owned));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(16_384);
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut req = client.get(&url);
                if let Some(key) = &key {
                    req = req.header("X-API-Key", key);
                }
                match req.send().await {
                    Ok(res) if accepted(res.status()) => {
                        let _ = res.bytes().await;
                        latencies.push(t.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    collect(name, tasks, started).await
}

/// Reads what the stack still has to work off (the outbox, JetStream's consumers) and
/// Postgres's connections: the soak's columns, and the clock scenario's wait before its baseline.
struct Probe {
    js: async_nats::jetstream::Context,
    config: BusConfig,
    db: sqlx::PgPool,
}

impl Probe {
    async fn connect() -> Result<Self, Box<dyn std::error::Error>> {
        let config = BusConfig::from_env()?;
        let nats = async_nats::connect(config.servers()).await?;
        let url = clokio_runtime::config::database_url("CLOKIO_ATTENDANCE_DATABASE_URL");
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await?;
        Ok(Self {
            js: async_nats::jetstream::new(nats),
            config,
            db,
        })
    }

    /// Events written to attendance-svc's outbox and not yet published.
    async fn outbox(&self) -> Option<i64> {
        sqlx::query_scalar("SELECT count(*) FROM attendance.outbox")
            .fetch_one(&self.db)
            .await
            .ok()
    }

    /// Connections to this database, the services' and this probe's.
    async fn connections(&self) -> Option<i64> {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
        )
        .fetch_one(&self.db)
        .await
        .ok()
    }

    /// Messages not yet delivered or not yet acknowledged, over the durable consumers.
    async fn pending(&self) -> Option<u64> {
        let subjects = &self.config.subjects;
        let mut total = 0;
        for (stream, consumer) in [
            (subjects.events_stream(), "webhook-intake"),
            (subjects.events_stream(), "reporting"),
            (subjects.webhook_queue().0, "webhook-workers"),
        ] {
            let stream = self.js.get_stream(&stream).await.ok()?;
            let info = stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(consumer)
                .await
                .ok()?
                .cached_info()
                .clone();
            total += info.num_pending + info.num_ack_pending as u64;
        }
        Some(total)
    }

    /// Waits (at most a minute) until the stack has worked off what was written: the outbox
    /// relayed and the services' consumers with nothing pending or unacknowledged.
    async fn drained(&self) -> Result<(), Box<dyn std::error::Error>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = match (self.outbox().await, self.pending().await) {
                (Some(outbox), Some(pending)) => outbox as u64 + pending,
                _ => return Err("cannot read the outbox or the consumers".into()),
            };
            if left == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                eprintln!("the stack still had {left} events to work off after a minute");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// After a scenario made its org: waits until the stack has worked off the org's events, then
/// vacuums and analyzes the services' tables, so that the services' own upkeep (every 30 s,
/// `VACUUM (ANALYZE)` of a table with 10,000 new rows) has nothing left to do during the timed
/// runs. Timed at once, the daily report of 50,000 employees read 215 ms p50 while its query
/// alone took 57 ms in Postgres; minutes later, 138 ms (27 ms at 10,000).
async fn settle() -> Result<(), Box<dyn std::error::Error>> {
    Probe::connect().await?.drained().await?;
    for (var, schema) in [
        ("CLOKIO_EMPLOYEE_DATABASE_URL", "employee"),
        ("CLOKIO_ATTENDANCE_DATABASE_URL", "attendance"),
        ("CLOKIO_REPORTING_DATABASE_URL", "reporting"),
    ] {
        let url = clokio_runtime::config::database_url(var);
        let pool = clokio_runtime::db::connect(&url, schema, 1, Duration::from_secs(5)).await?;
        // Every table of the schema (no threshold), once this holds the upkeep's lock: nothing
        // vacuumed means a service holds it and is vacuuming, so wait for it to finish.
        let deadline = Instant::now() + Duration::from_secs(300);
        while clokio_runtime::db::vacuum(&pool, 0).await?.is_empty() {
            if Instant::now() > deadline {
                eprintln!(
                    "the {schema} schema's upkeep lock stayed taken for 5 minutes; timing anyway"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        pool.close().await;
    }
    Ok(())
}

/// Offers `rate` GETs a second for `duration`, each timed from its scheduled send and from its
/// actual send. The schedule is kept by a thread of its own that sleeps with the OS timer: tokio's
/// timer wakes on whole milliseconds, and on this path (under a millisecond from the send) its
/// lateness would be most of what the scheduled timing measures. The pacer's own lateness still
/// counts: a request is timed from when it should have left. The third phase is the pacer's own
/// wake-up lateness, the time this machine kept a sleeping thread from running, as a baseline.
async fn fixed_rate(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    key: &str,
    rate: u64,
    duration: Duration,
) -> (Phase, Phase, Phase) {
    let started = Instant::now();
    let total = rate * duration.as_secs();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    // (latency from the scheduled time, latency from the actual send, errors)
    let results = Arc::new(std::sync::Mutex::new((
        Vec::with_capacity(total as usize),
        Vec::with_capacity(total as usize),
        0usize,
    )));
    let (client, url, key) = (client.clone(), url.to_owned(), key.to_owned());
    let pacer_results = results.clone();
    let (tasks, mut woke_late) = tokio::task::spawn_blocking(move || {
        let mut tasks = Vec::with_capacity(total as usize);
        let mut woke_late = Vec::with_capacity(total as usize);
        for i in 0..total {
            let scheduled = started + interval * i as u32;
            std::thread::sleep(scheduled.saturating_duration_since(Instant::now()));
            woke_late.push(scheduled.elapsed().as_micros() as u64);
            let (client, url, key, results) = (
                client.clone(),
                url.clone(),
                key.clone(),
                pacer_results.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                let res = client.get(&url).header("X-API-Key", &key).send().await;
                let ok = match res {
                    Ok(res) if accepted(res.status()) => res.bytes().await.is_ok(),
                    _ => false,
                };
                let mut r = results.lock().unwrap();
                if ok {
                    r.0.push(scheduled.elapsed().as_micros() as u64);
                    r.1.push(sent.elapsed().as_micros() as u64);
                } else {
                    r.2 += 1;
                }
            }));
        }
        (tasks, woke_late)
    })
    .await
    .expect("the pacing thread does not panic");
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed();
    let (mut latencies, mut from_send, errors) = std::mem::take(&mut *results.lock().unwrap());
    latencies.sort_unstable();
    from_send.sort_unstable();
    woke_late.sort_unstable();
    (
        Phase {
            name: format!("GET {path} @ {rate}/s"),
            requests: latencies.len(),
            errors,
            elapsed,
            latencies_us: latencies,
        },
        Phase {
            name: "  the same, timed from the send".to_owned(),
            requests: from_send.len(),
            errors,
            elapsed,
            latencies_us: from_send,
        },
        Phase {
            name: "  the pacer's wake-up lateness".to_owned(),
            requests: woke_late.len(),
            errors: 0,
            elapsed,
            latencies_us: woke_late,
        },
    )
}

async fn collect(
    name: &str,
    tasks: Vec<tokio::task::JoinHandle<(Vec<u64>, usize)>>,
    started: Instant,
) -> Phase {
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            latencies.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Phase {
        name: name.to_owned(),
        requests: latencies.len(),
        errors,
        elapsed,
        latencies_us: latencies,
    }
}

async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// `runs` GETs of `path`, one after another after a short warm-up: the latencies and the size of
/// the last answer.
async fn sequential(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    name: String,
    path: &str,
    runs: usize,
) -> Result<(Phase, usize), Box<dyn std::error::Error>> {
    sequential_get(
        client,
        &format!("{base}{path}"),
        Some(("X-API-Key", key)),
        name,
        runs,
    )
    .await
}

/// `runs` GETs of `url` (with `header` when given), one after another after a short warm-up.
async fn sequential_get(
    client: &reqwest::Client,
    url: &str,
    header: Option<(&str, &str)>,
    name: String,
    runs: usize,
) -> Result<(Phase, usize), Box<dyn std::error::Error>> {
    let get = || {
        let req = client.get(url);
        match header {
            Some((name, value)) => req.header(name, value),
            None => req,
        }
        .send()
    };
    for _ in 0..3 {
        let _ = get().await?.bytes().await?;
    }
    let mut latencies = Vec::with_capacity(runs);
    let mut bytes = 0;
    let started = Instant::now();
    for _ in 0..runs {
        let t = Instant::now();
        let res = get().await?;
        if res.status() != 200 {
            return Err(format!("{url}: {}", res.status()).into());
        }
        bytes = res.bytes().await?.len();
        latencies.push(t.elapsed().as_micros() as u64);
    }
    latencies.sort_unstable();
    let phase = Phase {
        name,
        requests: runs,
        errors: 0,
        elapsed: started.elapsed(),
        latencies_us: latencies,
    };
    Ok((phase, bytes))
}

fn table(phases: &[&Phase]) {
    println!(
        "| {:<34} | {:>9} | {:>6} | {:>10} | {:>8} | {:>8} |",
        "phase", "requests", "errors", "req/s", "p50 ms", "p99 ms"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|",
        "-".repeat(36),
        "-".repeat(11),
        "-".repeat(8),
        "-".repeat(12),
        "-".repeat(10),
        "-".repeat(10)
    );
    for p in phases {
        println!("{}", p.row());
    }
}

/// Peak and current resident memory, KiB.
type Memory = Option<(u64, u64)>;

/// Peak and current resident memory (KiB) of a process started by `deploy/local/up.sh`.
fn memory_kib(service: &str) -> Memory {
    let pid = std::fs::read_to_string(format!(".clokio/run/{service}.pid")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

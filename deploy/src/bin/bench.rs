//! clokio-bench: benchmarks run against a live installation (`deploy/local/bench.sh` starts one
//! with release builds). Its scenarios:
//!
//! - `read` (default): the gateway's read path against `/healthz`, described below.
//! - `clock`: clock-in/clock-out cycles across 1,000 employees (`--employees`), closed loop;
//!   clock events per second, against `/healthz` and single-row `INSERT`s into the same Postgres
//!   (16 connections), both in the same run.
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
//! send time, so a stall is not hidden by the load generator waiting).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

#[path = "../bench/console.rs"]
mod console;
#[path = "../bench/soak.rs"]
mod soak;
#[path = "../bench/stream.rs"]
mod stream;
use clokio_bus::Bus;
use clokio_bus::ops::{KeyCreate, KeyCreateOp, OrgCreate, OrgCreateOp};
use clokio_bus::scope::Scopes;
use clokio_bus::types::{Plan, Timezone};
use clokio_runtime::config::BusConfig;

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
    /// `read`, `clock`, `daily`, `summary`, `webhook`, `console`, `stream`, `all`, `scaling`,
    /// `paging` or `soak`.
    #[arg(long, default_value = "read")]
    scenario: String,
    /// The admin console's base URL (the `console` scenario).
    #[arg(
        long,
        env = "CLOKIO_CONSOLE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    console_url: String,
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
    match args.scenario.as_str() {
        "read" => read_bench(&args, &client).await,
        "clock" => clock_bench(&args, &client).await,
        "daily" => daily_bench(&args, &client).await,
        "summary" => summary_bench(&args, &client).await,
        "webhook" => webhook_bench(&args, &client).await,
        "console" => console::console_bench(&args, &client).await,
        "stream" => stream::stream_bench(&args, &client).await,
        "soak" => soak::soak_bench(&args, &client).await,
        "all" => all(&args, &client).await,
        "scaling" => scaling(&args, &client).await,
        "paging" => paging_bench(&args, &client).await,
        other => Err(format!(
            "unknown scenario {other} (read, clock, daily, summary, webhook, console, stream, all, scaling, paging)"
        )
        .into()),
    }
}

/// One line of the `all` table.
struct Row {
    bench: String,
    result: String,
    baseline: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

/// What each scenario adds to the `all` table.
static REPORT: std::sync::Mutex<Vec<Row>> = std::sync::Mutex::new(Vec::new());

fn report(
    bench: String,
    result: String,
    baseline: String,
    ratio: String,
    target: &str,
    met: Option<bool>,
) {
    REPORT.lock().unwrap().push(Row {
        bench,
        result,
        baseline,
        ratio,
        target: target.to_owned(),
        met,
    });
}

const SERVICES: [&str; 6] = [
    "gateway",
    "employee-svc",
    "attendance-svc",
    "webhook-svc",
    "reporting-svc",
    "console",
];

/// Every scenario at its standard size, then `docs/benchmarks.md`.
async fn all(args: &Args, client: &reqwest::Client) -> Result<(), Box<dyn std::error::Error>> {
    let idle: Vec<(&str, Memory)> = SERVICES.iter().map(|s| (*s, memory_kib(s))).collect();
    for (service, m) in &idle {
        if let Some((_, rss)) = m {
            let mib = *rss as f64 / 1024.0;
            let limit = if *service == "console" { 20.0 } else { 30.0 };
            report(
                format!("idle RSS, {service}"),
                format!("{mib:.1} MiB"),
                String::new(),
                String::new(),
                if *service == "console" {
                    "≤ 20 MiB"
                } else {
                    "≤ 30 MiB"
                },
                Some(mib <= limit),
            );
        }
    }
    let with = |employees, concurrency, rate| args.sized(employees, concurrency, rate);
    read_bench(&with(50, 32, 1000), client).await?;
    clock_bench(&with(1000, 64, 1000), client).await?;
    daily_bench(&with(10_000, 32, 1000), client).await?;
    daily_bench(&with(20_000, 32, 1000), client).await?;
    summary_bench(&with(10_000, 32, 1000), client).await?;
    webhook_bench(&with(1000, 64, 100), client).await?;
    console::console_bench(args, client).await?;
    stream::stream_bench(args, client).await?;
    report_peaks("peak RSS after the runs", &SERVICES);
    let machine = machine();
    let mut md = String::from(
        "# Benchmarks\n\nWritten by `deploy/local/bench.sh --scenario all` (release builds started by \
         `deploy/local/up.sh`, load generated on the same machine). Ratios compare with a baseline \
         measured in the same run, which is what to compare across machines; absolute numbers \
         depend on the machine.\n\n",
    );
    md.push_str(&format!("{machine}\n\n"));
    md.push_str("| benchmark | result | baseline (same run) | ratio | target | met |\n");
    md.push_str("|---|---|---|---|---|---|\n");
    for r in REPORT.lock().unwrap().iter() {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {met} |\n",
            r.bench, r.result, r.baseline, r.ratio, r.target
        ));
    }
    // The sections that other scenarios write, run on their own, stay below the table.
    write_doc(None, &md)?;
    println!("\n{md}");
    eprintln!("written to docs/benchmarks.md");
    Ok(())
}

/// How cost grows with the org: the daily report and the monthly summary at 1,000, 10,000 and
/// 50,000 employees (with the peak memory of the services on their path, reset before each size),
/// clock events at 1, 16, 64 and 256 connections and webhook deliveries with 1, 10 and 100
/// subscriptions; written to the "How cost grows" section of `docs/benchmarks.md`.
async fn scaling(args: &Args, client: &reqwest::Client) -> Result<(), Box<dyn std::error::Error>> {
    let with = |employees, concurrency, rate| args.sized(employees, concurrency, rate);
    for n in [1_000, 10_000, 50_000] {
        reset_peaks(&["gateway", "attendance-svc"]);
        daily_bench(&with(n, 32, 1000), client).await?;
        report_peaks(
            &format!("daily report, {n} records: peak RSS"),
            &["gateway", "attendance-svc"],
        );
    }
    for n in [1_000, 10_000, 50_000] {
        reset_peaks(&["gateway", "reporting-svc"]);
        summary_bench(&with(n, 32, 1000), client).await?;
        report_peaks(
            &format!("monthly summary, {n} × 22 days: peak RSS"),
            &["gateway", "reporting-svc"],
        );
    }
    for connections in [1, 16, 64, 256] {
        clock_bench(&with(1000, connections, 1000), client).await?;
    }
    for hooks in [1, 10, 100] {
        let args = Args {
            hooks,
            ..with(1000, 64, 100)
        };
        webhook_bench(&args, client).await?;
    }
    let mut md = format!(
        "{SCALING_HEADING}\n\nWritten by `deploy/local/bench.sh --scenario scaling` (the same \
         machine and builds as above). Peak memory (VmHWM) is reset before each size of the \
         reports, so each size shows its own.\n\n{SCALING_READING}\n\n"
    );
    md.push_str(&format!("{}\n\n", machine()));
    md.push_str("| benchmark | result | baseline (same run) | ratio |\n|---|---|---|---|\n");
    for r in REPORT.lock().unwrap().iter() {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.bench, r.result, r.baseline, r.ratio
        ));
    }
    // The section replaces its earlier run; the `all` table and the other sections stay.
    write_doc(Some(SCALING_HEADING), &md)?;
    println!("\n{md}");
    eprintln!("written to docs/benchmarks.md");
    Ok(())
}

/// How the `scaling` table's shape is to be read (what grows with what, and why it is not linear
/// where it is not).
const SCALING_READING: &str = "How to read it:\n\n\
- **Reports** cost per row: sessions folded, JSON or CSV bytes written. Both grow about \
linearly with the employees. The summary's baseline (a month without sessions) grows with them \
too, since every employee still gets a row: 50,000 rows are about 14 MB of JSON.\n\
- **Clock events** grow with connections only until the two cores are busy. Postgres, five \
services, NATS, Redis and the load generator share them. Past that point more connections only \
queue: events/s stay flat and p50 grows with the connections. On one machine this cannot be \
linear. Throughput comes from attendance-svc replicas and a larger Postgres.\n\
- **Webhook deliveries per second** grow with the subscriptions. An event's fixed cost (the \
outbox relay, JetStream, the intake's lookup and insert) is shared by all of its deliveries. \
With 100 subscriptions, 100 events/s offered means 10,000 deliveries/s, more than one replica \
delivers. That row's latency therefore measures the queue.\n\
- **Peak memory** is reset to the current RSS, not to the idle size. Memory that a service's \
allocator kept from an earlier size counts in the next one; this shows most in the gateway.";

/// The heading of the `scaling` section, which the `all` run keeps below its table.
const SCALING_HEADING: &str = "## How cost grows";

/// A row per service: its peak resident memory, as `{label}, {service}`.
fn report_peaks(label: &str, services: &[&str]) {
    for service in services {
        if let Some((peak, _)) = memory_kib(service) {
            report(
                format!("{label}, {service}"),
                format!("{:.1} MiB", peak as f64 / 1024.0),
                String::new(),
                String::new(),
                "",
                None,
            );
        }
    }
}

/// Resets the peak resident memory (VmHWM) of processes started by `deploy/local/up.sh`.
fn reset_peaks(services: &[&str]) {
    for service in services {
        if let Ok(pid) = std::fs::read_to_string(format!(".clokio/run/{service}.pid")) {
            // "5" resets the peak RSS (proc(5), /proc/pid/clear_refs).
            let _ = std::fs::write(format!("/proc/{}/clear_refs", pid.trim()), "5");
        }
    }
}

/// The machine and the date, for the report.
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

/// The gateway's read path against `/healthz` (module docs).
async fn read_bench(
    args: &Args,
    client: &reqwest::Client,
) -> Result<(), Box<dyn std::error::Error>> {
    let key = setup(args, client).await?;
    let healthz = format!("{}/healthz", args.url);
    let employees = format!("{}{}", args.url, args.path);
    let seconds = Duration::from_secs(args.seconds);

    eprintln!("warming up…");
    closed_loop(
        "warm-up",
        client,
        &employees,
        Some(&key),
        args.concurrency,
        Duration::from_secs(2),
    )
    .await;
    closed_loop(
        "warm-up",
        client,
        &healthz,
        None,
        args.concurrency,
        Duration::from_secs(1),
    )
    .await;

    let health = closed_loop(
        "GET /healthz",
        client,
        &healthz,
        None,
        args.concurrency,
        seconds,
    )
    .await;
    let read = closed_loop(
        &format!("GET {} ({} employees)", args.path, args.employees),
        client,
        &employees,
        Some(&key),
        args.concurrency,
        seconds,
    )
    .await;
    let (fixed, fixed_from_send) =
        fixed_rate(client, &employees, &args.path, &key, args.rate, seconds).await;

    println!(
        "\nGateway read path, {} connections, {} s per phase\n",
        args.concurrency, args.seconds
    );
    table(&[&health, &read, &fixed, &fixed_from_send]);
    let ratio = read.throughput() / health.throughput();
    println!(
        "\nread/healthz throughput ratio: {:.3} (target ≥ 0.35); p99 at {} req/s: {:.2} ms (target ≤ 5 ms)",
        ratio,
        args.rate,
        fixed.percentile(0.99)
    );
    report(
        format!(
            "read path: `GET {}`, {} connections",
            args.path, args.concurrency
        ),
        format!("{:.0} req/s", read.throughput()),
        format!("`/healthz` {:.0} req/s", health.throughput()),
        format!("{ratio:.3}"),
        "≥ 0.35",
        Some(ratio >= 0.35),
    );
    report(
        format!("read path p99 at {} req/s offered", args.rate),
        format!("{:.2} ms", fixed.percentile(0.99)),
        String::new(),
        String::new(),
        "≤ 5 ms",
        Some(fixed.percentile(0.99) <= 5.0),
    );
    Ok(())
}

/// The first page of 50 employees of an org of `args.employees` (10,000 in the figure),
/// against the whole list as it was the only answer before pages, in the same run.
async fn paging_bench(
    args: &Args,
    client: &reqwest::Client,
) -> Result<(), Box<dyn std::error::Error>> {
    eprintln!("creating an org with {} employees…", args.employees);
    let key = setup(args, client).await?;
    let seconds = Duration::from_secs(args.seconds);
    let whole = format!("{}/api/v1/employees", args.url);
    let first = format!("{whole}?page=1&per_page=50");
    for url in [&whole, &first] {
        let warm = Duration::from_secs(1);
        closed_loop("warm-up", client, url, Some(&key), args.concurrency, warm).await;
    }
    let c = args.concurrency;
    let whole = closed_loop(
        "GET /api/v1/employees",
        client,
        &whole,
        Some(&key),
        c,
        seconds,
    )
    .await;
    let first = closed_loop(
        "GET …?page=1&per_page=50",
        client,
        &first,
        Some(&key),
        c,
        seconds,
    )
    .await;
    println!(
        "\nEmployees of an org of {}, {c} connections, {} s per phase\n",
        args.employees, args.seconds
    );
    table(&[&whole, &first]);
    println!(
        "\nfirst page p50 {:.2} ms, whole list p50 {:.2} ms: {:.1}x faster",
        first.percentile(0.5),
        whole.percentile(0.5),
        whole.percentile(0.5) / first.percentile(0.5)
    );
    Ok(())
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
    sqlx::query(
        "INSERT INTO employee.employees \
           (org_id, employee_code, name, email, department, location_id, password_hash, hire_date) \
         SELECT $1, 'B' || lpad(i::text, 5, '0'), 'Bench Employee ' || i, 'bench' || i || '@example.com', \
           'Benchmarks', (SELECT min(id) FROM employee.locations WHERE org_id = $1), '!', '2025-01-01' \
         FROM generate_series(0, $2 - 1) AS i",
    )
    .bind(org.as_uuid())
    .bind(n as i32)
    .execute(&mut db)
    .await?;
    // Rows written behind the service's back: give the planner their statistics now rather than
    // whenever autovacuum comes round (a fresh 10,000-row org planned on stale statistics made
    // the console's Employees page 4× slower on its first measured run).
    sqlx::query("ANALYZE employee.employees")
        .execute(&mut db)
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

async fn fixed_rate(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    key: &str,
    rate: u64,
    duration: Duration,
) -> (Phase, Phase) {
    let started = Instant::now();
    let total = rate * duration.as_secs();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    // (latency from the scheduled time, latency from the actual send, errors)
    let results = Arc::new(std::sync::Mutex::new((
        Vec::with_capacity(total as usize),
        Vec::with_capacity(total as usize),
        0usize,
    )));
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = started + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let (client, url, key, results) = (
            client.clone(),
            url.to_owned(),
            key.to_owned(),
            results.clone(),
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
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed();
    let (mut latencies, mut from_send, errors) = std::mem::take(&mut *results.lock().unwrap());
    latencies.sort_unstable();
    from_send.sort_unstable();
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

/// Clock-in/clock-out cycles: each connection owns a slice of the employees and walks it, clocking
/// each in and then out, so every request is a state change with its event.
async fn clock_bench(
    args: &Args,
    client: &reqwest::Client,
) -> Result<(), Box<dyn std::error::Error>> {
    eprintln!("creating an org with {} employees…", args.employees);
    let key = setup(args, client).await?;
    let healthz = format!("{}/healthz", args.url);
    let seconds = Duration::from_secs(args.seconds);
    closed_loop(
        "warm-up",
        client,
        &healthz,
        None,
        args.concurrency,
        Duration::from_secs(1),
    )
    .await;
    let health = closed_loop(
        "GET /healthz",
        client,
        &healthz,
        None,
        args.concurrency,
        seconds,
    )
    .await;
    let started = Instant::now();
    let deadline = started + seconds;
    let concurrency = args.concurrency.min(args.employees).max(1);
    let mut tasks = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let (client, url, key) = (client.clone(), args.url.clone(), key.clone());
        let mine: Vec<String> = (w..args.employees)
            .step_by(concurrency)
            .map(|i| format!("B{i:05}"))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(16_384);
            let mut errors = 0usize;
            let mut turn = 0usize;
            while Instant::now() < deadline {
                // Every employee in, then every employee out.
                let action = if (turn / mine.len()).is_multiple_of(2) {
                    "clock-in"
                } else {
                    "clock-out"
                };
                let nip = &mine[turn % mine.len()];
                turn += 1;
                let t = Instant::now();
                let res = client
                    .post(format!("{url}/api/v1/attendance/{action}"))
                    .header("X-API-Key", &key)
                    .json(&serde_json::json!({ "nip": nip }))
                    .send()
                    .await;
                match res {
                    Ok(res) if res.status().is_success() => {
                        let _ = res.bytes().await;
                        latencies.push(t.elapsed().as_micros() as u64);
                    }
                    Ok(res) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("{action} {nip}: {}", res.text().await.unwrap_or_default());
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let clock = collect("POST clock-in / clock-out", tasks, started).await;
    let insert = insert_baseline(concurrency, seconds).await?;
    println!(
        "\nClock events, {} employees, {} connections, {} s per phase\n",
        args.employees, concurrency, args.seconds
    );
    table(&[&health, &insert, &clock]);
    println!(
        "\nclock events/s: {:.0} (target ≥ 1,500); clock/healthz throughput ratio: {:.3}; \
         clock/INSERT ratio: {:.3}",
        clock.throughput(),
        clock.throughput() / health.throughput(),
        clock.throughput() / insert.throughput()
    );
    report(
        format!(
            "clock-in/out, {} employees, {concurrency} connections",
            args.employees
        ),
        format!(
            "{:.0} events/s (p50 {:.1} ms)",
            clock.throughput(),
            clock.percentile(0.5)
        ),
        format!(
            "one-row `INSERT` {:.0} tps (`/healthz` {:.0} req/s)",
            insert.throughput(),
            health.throughput()
        ),
        format!("{:.3}", clock.throughput() / insert.throughput()),
        "≥ 1,500 events/s",
        Some(clock.throughput() >= 1500.0),
    );
    Ok(())
}

/// What the database alone does: single-row `INSERT`s, each its own transaction, from
/// `concurrency` connections (as many as the load has, at most 16) for `seconds`, against the same
/// Postgres the services use, into a scratch table that is dropped afterwards. A clock event is
/// at least one such insert and its outbox row, so this is the ceiling it is judged against.
async fn insert_baseline(
    concurrency: usize,
    seconds: Duration,
) -> Result<Phase, Box<dyn std::error::Error>> {
    use sqlx::postgres::PgPoolOptions;
    let url = clokio_runtime::config::database_url("CLOKIO_ATTENDANCE_DATABASE_URL");
    let connections = concurrency.clamp(1, 16);
    let pool = PgPoolOptions::new()
        .max_connections(connections as u32)
        .connect(&url)
        .await?;
    sqlx::query("DROP TABLE IF EXISTS attendance.clokio_bench_insert")
        .execute(&pool)
        .await?;
    sqlx::query(
        "CREATE TABLE attendance.clokio_bench_insert (id bigserial PRIMARY KEY, org_id uuid NOT NULL, \
            at timestamptz NOT NULL, payload bytea NOT NULL)",
    )
    .execute(&pool)
    .await?;
    let started = Instant::now();
    let deadline = started + seconds;
    let tasks = (0..connections)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(65_536);
                let mut errors = 0usize;
                let org = sqlx::types::Uuid::new_v4();
                let payload = vec![0u8; 400];
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let done = sqlx::query(
                        "INSERT INTO attendance.clokio_bench_insert (org_id, at, payload) \
                         VALUES ($1, now(), $2)",
                    )
                    .bind(org)
                    .bind(&payload)
                    .execute(&pool)
                    .await;
                    match done {
                        Ok(_) => latencies.push(t.elapsed().as_micros() as u64),
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let phase = collect(
        &format!("INSERT one row, {connections} connections"),
        tasks,
        started,
    )
    .await;
    sqlx::query("DROP TABLE attendance.clokio_bench_insert")
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(phase)
}

/// The daily report of an org whose `args.employees` employees all attended one date, against the
/// same report for a date nobody attended. The org is kept in `.clokio/` and reused while it
/// still answers, since creating 10,000 employees takes a while.
async fn daily_bench(
    args: &Args,
    client: &reqwest::Client,
) -> Result<(), Box<dyn std::error::Error>> {
    let state =
        std::path::PathBuf::from(".clokio").join(format!("bench-daily-{}.key", args.employees));
    let date = "2026-01-05";
    let get = |key: &str, path: &str| {
        client
            .get(format!("{}{path}", args.url))
            .header("X-API-Key", key)
            .send()
    };
    let mut key = std::fs::read_to_string(&state)
        .ok()
        .map(|k| k.trim().to_owned());
    if let Some(k) = &key {
        let res = get(k, &format!("/api/v1/attendance/daily?date={date}")).await?;
        let ok = res.status() == 200
            && res.json::<serde_json::Value>().await?["data"]
                .as_array()
                .is_some_and(|a| a.len() == args.employees);
        if !ok {
            key = None;
        }
    }
    let key = match key {
        Some(k) => {
            eprintln!("reusing the org in {}", state.display());
            k
        }
        None => {
            eprintln!(
                "creating an org with {} employees (once; kept in {})…",
                args.employees,
                state.display()
            );
            let key = setup(args, client).await?;
            for chunk in (0..args.employees).collect::<Vec<_>>().chunks(5000) {
                let records: Vec<serde_json::Value> = chunk
                    .iter()
                    .map(|i| serde_json::json!({
                        "nip": format!("B{i:05}"),
                        "clock_in": format!("{date}T08:{:02}:00Z", i % 60),
                        "clock_out": format!("{date}T17:{:02}:00Z", (i * 7) % 60),
                        "breaks": [{"start": format!("{date}T12:00:00Z"), "end": format!("{date}T12:30:00Z")}],
                    }))
                    .collect();
                let res = client
                    .post(format!("{}/api/v1/attendance/import", args.url))
                    .header("X-API-Key", &key)
                    .json(&serde_json::json!({ "records": records }))
                    .send()
                    .await?;
                if res.status() != 201 {
                    return Err(format!("import failed: {}", res.text().await?).into());
                }
            }
            std::fs::create_dir_all(".clokio")?;
            std::fs::write(&state, &key)?;
            key
        }
    };
    let runs = (args.seconds as usize * 5).max(20);
    let (empty, _) = sequential(
        client,
        &args.url,
        &key,
        "daily report, nobody attended".to_owned(),
        "/api/v1/attendance/daily?date=2026-01-04",
        runs,
    )
    .await?;
    let (full, bytes) = sequential(
        client,
        &args.url,
        &key,
        format!("daily report, {} records", args.employees),
        &format!("/api/v1/attendance/daily?date={date}"),
        runs,
    )
    .await?;
    println!(
        "\nDaily report, one request at a time, {runs} requests per phase ({:.1} MiB per full report)\n",
        bytes as f64 / (1024.0 * 1024.0)
    );
    table(&[&empty, &full]);
    println!(
        "\nfull report p50: {:.1} ms (target ≤ 150 ms at 10,000); full/empty p50 ratio: {:.1}",
        full.percentile(0.5),
        full.percentile(0.5) / empty.percentile(0.5)
    );
    report(
        format!("daily report, {} records", args.employees),
        format!("p50 {:.1} ms", full.percentile(0.5)),
        format!("empty date p50 {:.1} ms", empty.percentile(0.5)),
        format!("{:.1}", full.percentile(0.5) / empty.percentile(0.5)),
        if args.employees <= 10_000 {
            "≤ 150 ms"
        } else {
            ""
        },
        (args.employees <= 10_000).then_some(full.percentile(0.5) <= 150.0),
    );
    Ok(())
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

/// The monthly summary of January 2026 for an org whose employees worked all 22 work days.
async fn summary_bench(
    args: &Args,
    client: &reqwest::Client,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = args.employees;
    let state = std::path::PathBuf::from(".clokio").join(format!("bench-summary-{n}.key"));
    let url = |path: &str| format!("{}{path}", args.url);
    let days: Vec<chrono::NaiveDate> = (1..=31)
        .filter_map(|d| chrono::NaiveDate::from_ymd_opt(2026, 1, d))
        .filter(|d| chrono::Datelike::weekday(d).number_from_monday() <= 5)
        .collect();
    let complete = |key: String| async move {
        let res = client
            .get(url("/api/v1/attendance/summary?month=1&year=2026"))
            .header("X-API-Key", &key)
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = res.json().await.ok()?;
        let rows = body["data"].as_array()?;
        let present: u64 = rows.iter().filter_map(|r| r["days_present"].as_u64()).sum();
        Some(rows.len() == n && present == (n * 22) as u64)
    };
    let mut key = std::fs::read_to_string(&state)
        .ok()
        .map(|k| k.trim().to_owned());
    if let Some(k) = &key
        && complete(k.clone()).await != Some(true)
    {
        key = None;
    }
    let key = match key {
        Some(k) => {
            eprintln!("reusing the org in {}", state.display());
            k
        }
        None => {
            eprintln!(
                "creating an org with {n} employees × {} work days (once; kept in {})…",
                days.len(),
                state.display()
            );
            let key = setup(args, client).await?;
            for day in &days {
                for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
                    let records: Vec<serde_json::Value> = chunk
                        .iter()
                        .map(|i| serde_json::json!({
                            "nip": format!("B{i:05}"),
                            "clock_in": format!("{day}T08:{:02}:00Z", i % 30),
                            "clock_out": format!("{day}T17:{:02}:00Z", (i * 7) % 60),
                            "breaks": [{"start": format!("{day}T12:00:00Z"), "end": format!("{day}T12:30:00Z")}],
                        }))
                        .collect();
                    let res = client
                        .post(url("/api/v1/attendance/import"))
                        .header("X-API-Key", &key)
                        .json(&serde_json::json!({ "records": records }))
                        .send()
                        .await?;
                    if res.status() != 201 {
                        return Err(format!("import failed: {}", res.text().await?).into());
                    }
                }
                eprintln!("  imported {day}");
            }
            eprintln!("waiting for the projection…");
            let started = Instant::now();
            while complete(key.clone()).await != Some(true) {
                if started.elapsed() > Duration::from_secs(600) {
                    return Err("the projection did not catch up within 10 minutes".into());
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            std::fs::create_dir_all(".clokio")?;
            std::fs::write(&state, &key)?;
            key
        }
    };
    let runs = (args.seconds as usize * 2).max(20);
    // The CSV first, so its memory peak is its own.
    let before = (memory_kib("gateway"), memory_kib("reporting-svc"));
    let time =
        |name: String, path: &'static str| sequential(client, &args.url, &key, name, path, runs);
    let (csv, csv_bytes) = time(
        format!("summary CSV, {n} × 22 days"),
        "/api/v1/attendance/summary?month=1&year=2026&format=csv",
    )
    .await?;
    let after_csv = (memory_kib("gateway"), memory_kib("reporting-svc"));
    let (empty, _) = time(
        "summary JSON, month without sessions".to_owned(),
        "/api/v1/attendance/summary?month=1&year=2025",
    )
    .await?;
    let (full, json_bytes) = time(
        format!("summary JSON, {n} × 22 days"),
        "/api/v1/attendance/summary?month=1&year=2026",
    )
    .await?;
    let after_json = (memory_kib("gateway"), memory_kib("reporting-svc"));
    println!(
        "\nMonthly summary, one request at a time, {runs} requests per phase (JSON {:.1} MiB, CSV {:.1} MiB)\n",
        json_bytes as f64 / 1048576.0,
        csv_bytes as f64 / 1048576.0
    );
    table(&[&empty, &full, &csv]);
    println!(
        "\nJSON p50: {:.1} ms (target ≤ 300 ms); full/empty p50 ratio: {:.2}",
        full.percentile(0.5),
        full.percentile(0.5) / empty.percentile(0.5)
    );
    let show = |label: &str, m: (Memory, Memory)| {
        let f = |x: Memory| {
            x.map_or("n/a".to_owned(), |(peak, rss)| {
                format!(
                    "peak {:.1} MiB, now {:.1} MiB",
                    peak as f64 / 1024.0,
                    rss as f64 / 1024.0
                )
            })
        };
        println!(
            "  {label:<22} gateway: {:<34} reporting-svc: {}",
            f(m.0),
            f(m.1)
        );
    };
    report(
        format!("monthly summary JSON, {n} × 22 days"),
        format!("p50 {:.1} ms", full.percentile(0.5)),
        format!("empty month p50 {:.1} ms", empty.percentile(0.5)),
        format!("{:.1}", full.percentile(0.5) / empty.percentile(0.5)),
        "≤ 300 ms",
        Some(full.percentile(0.5) <= 300.0),
    );
    report(
        format!("monthly summary CSV, {n} × 22 days"),
        format!("p50 {:.1} ms", csv.percentile(0.5)),
        format!("JSON p50 {:.1} ms", full.percentile(0.5)),
        format!("{:.2}", csv.percentile(0.5) / full.percentile(0.5)),
        "",
        None,
    );
    println!("\nMemory (from /proc, processes started by up.sh):");
    show("before", before);
    show("after the CSV runs", after_csv);
    show("after the JSON runs", after_json);
    Ok(())
}

/// Clock events fanned out to 10 webhooks each, received here.
async fn webhook_bench(
    args: &Args,
    client: &reqwest::Client,
) -> Result<(), Box<dyn std::error::Error>> {
    let hooks = args.hooks.max(1);
    type Arrivals = Arc<std::sync::Mutex<Vec<(i64, String, Instant)>>>;
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}/bench", listener.local_addr()?);
    let app = axum::Router::new().fallback({
        let arrivals = arrivals.clone();
        move |body: axum::body::Bytes| {
            let arrivals = arrivals.clone();
            async move {
                let at = Instant::now();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                    && let (Some(id), Some(kind)) =
                        (v["data"]["attendance_id"].as_i64(), v["type"].as_str())
                {
                    arrivals.lock().unwrap().push((id, kind.to_owned(), at));
                }
                "ok"
            }
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    eprintln!(
        "creating an org with {} employees and {hooks} webhooks…",
        args.employees
    );
    let key = setup(args, client).await?;
    subscribe(args, client, &key, &receiver, hooks).await?;
    // Events: (attendance id, type) → when the API answered 2xx.
    type Sent = Arc<std::sync::Mutex<HashMap<(i64, String), Instant>>>;
    let sent: Sent = Arc::default();
    let employees: Vec<String> = (0..args.employees).map(|i| format!("B{i:05}")).collect();
    // Each employee alternates clock-in and clock-out; one request per employee at a time.
    let turn = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fire = |sent: Sent| {
        let i = turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nip = employees[i % employees.len()].clone();
        let action = if (i / employees.len()).is_multiple_of(2) {
            "clock-in"
        } else {
            "clock-out"
        };
        let (client, url, key) = (client.clone(), args.url.clone(), key.clone());
        async move {
            let Ok(res) = client
                .post(format!("{url}/api/v1/attendance/{action}"))
                .header("X-API-Key", &key)
                .json(&serde_json::json!({ "nip": nip }))
                .send()
                .await
            else {
                return;
            };
            let at = Instant::now();
            if let Ok(v) = res.json::<serde_json::Value>().await
                && let Some(id) = v["data"]["attendance_id"].as_i64()
            {
                sent.lock().unwrap().insert((id, action.to_owned()), at);
            }
        }
    };
    let wait_for = |n: usize| {
        let arrivals = arrivals.clone();
        async move {
            let until = Instant::now() + Duration::from_secs(120);
            while arrivals.lock().unwrap().len() < n && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    // 1. Latency at a steady rate the system keeps up with.
    let rate = args.rate.max(1);
    let total = (rate * args.seconds) as usize;
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut tasks = Vec::with_capacity(total);
    for k in 0..total {
        tokio::time::sleep_until((started + interval * k as u32).into()).await;
        tasks.push(tokio::spawn(fire(sent.clone())));
    }
    futures_join(tasks).await;
    let events = sent.lock().unwrap().len();
    wait_for(events * hooks).await;
    let latency = {
        let arrivals = arrivals.lock().unwrap().clone();
        let sent = sent.lock().unwrap().clone();
        let mut l: Vec<u64> = arrivals
            .iter()
            .filter_map(|(id, kind, at)| {
                Some(
                    at.saturating_duration_since(*sent.get(&(*id, kind.clone()))?)
                        .as_micros() as u64,
                )
            })
            .collect();
        l.sort_unstable();
        Phase {
            name: format!("{rate} events/s × {hooks} webhooks"),
            requests: arrivals.len(),
            errors: (events * hooks).saturating_sub(arrivals.len()),
            elapsed: started.elapsed(),
            latencies_us: l,
        }
    };

    // 2. Throughput: a burst of events, then the time until every delivery arrived.
    arrivals.lock().unwrap().clear();
    sent.lock().unwrap().clear();
    let burst = (rate as usize * 20).max(500);
    let started = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut tasks = Vec::with_capacity(burst);
    for _ in 0..burst {
        let permit = slots.clone().acquire_owned().await?;
        let f = fire(sent.clone());
        tasks.push(tokio::spawn(async move {
            f.await;
            drop(permit);
        }));
    }
    futures_join(tasks).await;
    let events_sent = started.elapsed();
    let burst_events = sent.lock().unwrap().len();
    wait_for(burst_events * hooks).await;
    let got = arrivals.lock().unwrap().clone();
    let last = got.iter().map(|a| a.2).max().unwrap_or(started);
    let drain = Phase {
        name: format!("burst of {burst_events} events × {hooks}"),
        requests: got.len(),
        errors: (burst_events * hooks).saturating_sub(got.len()),
        elapsed: last.duration_since(started),
        latencies_us: Vec::new(),
    };
    println!(
        "\nWebhooks to a local receiver, {hooks} generic webhooks per event ({} employees)\n",
        args.employees
    );
    table(&[&latency]);
    println!(
        "\nevent → delivery p50 {:.1} ms (target ≤ 50 ms), p99 {:.1} ms, at {} deliveries/s offered",
        latency.percentile(0.5),
        latency.percentile(0.99),
        rate as usize * hooks
    );
    println!(
        "burst: {} deliveries in {:.2} s = {:.0} deliveries/s (target ≥ 3,000); the events took {:.2} s to send; missing: {}",
        drain.requests,
        drain.elapsed.as_secs_f64(),
        drain.throughput(),
        events_sent.as_secs_f64(),
        drain.errors
    );
    report(
        format!(
            "webhook event → delivery, {} deliveries/s offered",
            rate as usize * hooks
        ),
        format!(
            "p50 {:.1} ms, p99 {:.1} ms",
            latency.percentile(0.5),
            latency.percentile(0.99)
        ),
        String::new(),
        String::new(),
        "p50 ≤ 50 ms",
        Some(latency.percentile(0.5) <= 50.0),
    );
    report(
        format!("webhook deliveries, burst of {burst_events} events × {hooks}"),
        format!(
            "{:.0} deliveries/s, {} missing",
            drain.throughput(),
            drain.errors
        ),
        String::new(),
        String::new(),
        "≥ 3,000/s",
        Some(drain.throughput() >= 3000.0 && drain.errors == 0),
    );
    Ok(())
}

//! `--scenario soak --minutes N` (default 10; bounded, not part of `all` or CI): a steady mixed
//! load at fixed rates the machine holds, to show that nothing grows with time.
//!
//! - 50 reads/s (`GET /api/v1/employees`), 20 clock events/s (200 employees, each clocking in,
//!   then out), one monthly summary a minute, and 2 webhooks on every clock event delivered to a
//!   receiver in this process (40 deliveries/s).
//! - Each minute it prints the requests sent in that minute, errors by status, p50/p99 (timed
//!   from each request's scheduled send, so a stall is not hidden), the deliveries that arrived,
//!   each service's resident memory, Postgres connections and what waits in JetStream.
//! - It passes with no error, p99 and every service's memory flat (grown by at most 10 %: memory
//!   from the second minute to the last, since the first warms caches and pools; p99 as the
//!   median of the last three minutes against that of the second to the fourth, so one pause of a
//!   shared machine does not decide it), and nothing pending at the end: every delivery arrived
//!   and no consumer holds a message.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Args, Probe, SERVICES, memory_kib, setup};

type Error = Box<dyn std::error::Error>;

const READS_PER_S: u32 = 50;
const CLOCKS_PER_S: u32 = 20;
const EMPLOYEES: usize = 200;
const HOOKS: usize = 2;
/// How much the late minutes may grow over the early ones before the soak fails.
const FLAT: f64 = 0.10;

#[derive(Clone, Copy)]
enum Kind {
    Read,
    Clock,
    Summary,
}

/// What the requests scheduled in one minute came to.
#[derive(Default)]
struct Minute {
    scheduled: usize,
    done: usize,
    /// Answers other than 2xx by status (0: no answer).
    errors: BTreeMap<u16, usize>,
    latencies_us: Vec<u64>,
    /// Clock events answered 2xx: each should arrive at the receiver `HOOKS` times.
    events: usize,
}

/// One printed row, kept for the verdict.
struct Row {
    /// As printed: a markdown table row.
    line: String,
    p99_ms: f64,
    rss_kib: Vec<u64>,
}

pub async fn soak_bench(args: &Args, client: &reqwest::Client) -> Result<(), Error> {
    let minutes = usize::try_from(args.minutes.max(3))?;
    let arrivals = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let receiver = receiver(arrivals.clone()).await?;
    let sized = Args {
        employees: EMPLOYEES,
        ..args.clone()
    };
    eprintln!("creating an org with {EMPLOYEES} employees and {HOOKS} webhooks…");
    let key = setup(&sized, client).await?;
    super::subscribe(args, client, &key, &receiver, HOOKS).await?;
    let probe = Probe::connect().await?;
    let start = Instant::now();
    let minute_of = |at: Instant| (at.duration_since(start).as_secs() / 60) as usize;
    let stats: Arc<Mutex<Vec<Minute>>> = Arc::new(Mutex::new(
        (0..minutes).map(|_| Minute::default()).collect(),
    ));
    let today = chrono::Utc::now().date_naive();
    let summary = format!(
        "/api/v1/attendance/summary?month={}&year={}",
        chrono::Datelike::month(&today),
        chrono::Datelike::year(&today)
    );

    // The schedule: every request at its own instant, on one timeline.
    let mut schedule: Vec<(Duration, Kind)> = Vec::new();
    for s in 0..minutes as u32 * 60 {
        let second = Duration::from_secs(u64::from(s));
        schedule.extend((0..READS_PER_S).map(|i| {
            (
                second + Duration::from_secs(1) * i / READS_PER_S,
                Kind::Read,
            )
        }));
        schedule.extend((0..CLOCKS_PER_S).map(|i| {
            (
                second + Duration::from_secs(1) * (2 * i + 1) / (2 * CLOCKS_PER_S),
                Kind::Clock,
            )
        }));
        if s % 60 == 30 {
            schedule.push((second + Duration::from_millis(500), Kind::Summary));
        }
    }
    schedule.sort_by_key(|(at, _)| *at);
    let clock_turn = Arc::new(AtomicU64::new(0));
    let load = format!(
        "{READS_PER_S} reads/s, {CLOCKS_PER_S} clock events/s × {HOOKS} webhooks, one summary a minute, \
         {minutes} minutes"
    );
    let head = format!(
        "| minute | requests | errors | p50 ms | p99 ms | deliveries | {} | Postgres connections | JetStream pending |\n|{}",
        SERVICES.map(|s| format!("RSS {s} MiB")).join(" | "),
        "---|".repeat(8 + SERVICES.len())
    );
    println!("\nSoak: {load}\n\n{head}");
    let mut rows: Vec<Row> = Vec::new();
    let mut next = schedule.into_iter().peekable();
    while rows.len() < minutes {
        // Send what is due, then look whether a minute is complete.
        let tick = Instant::now() + Duration::from_millis(10);
        while let Some((at, _)) = next.peek() {
            let scheduled = start + *at;
            if scheduled > tick {
                break;
            }
            let (_, kind) = next.next().expect("peeked");
            tokio::time::sleep_until(scheduled.into()).await;
            let m = minute_of(scheduled);
            stats.lock().unwrap()[m].scheduled += 1;
            let path = match kind {
                Kind::Read => "/api/v1/employees?per_page=50".to_owned(),
                Kind::Summary => summary.clone(),
                Kind::Clock => String::new(),
            };
            let (client, url, key, stats, turn) = (
                client.clone(),
                args.url.clone(),
                key.clone(),
                stats.clone(),
                clock_turn.clone(),
            );
            tokio::spawn(async move {
                let req = match kind {
                    Kind::Clock => {
                        let i = turn.fetch_add(1, Ordering::Relaxed) as usize;
                        let action = if (i / EMPLOYEES).is_multiple_of(2) {
                            "clock-in"
                        } else {
                            "clock-out"
                        };
                        client
                            .post(format!("{url}/api/v1/attendance/{action}"))
                            .json(&serde_json::json!({ "nip": format!("B{:05}", i % EMPLOYEES) }))
                    }
                    Kind::Read | Kind::Summary => client.get(format!("{url}{path}")),
                };
                let status = match req.header("X-API-Key", &key).send().await {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        if res.bytes().await.is_ok() { status } else { 0 }
                    }
                    Err(_) => 0,
                };
                let latency = scheduled.elapsed().as_micros() as u64;
                let mut stats = stats.lock().unwrap();
                let minute = &mut stats[m];
                minute.done += 1;
                if (200..300).contains(&status) {
                    minute.latencies_us.push(latency);
                    if matches!(kind, Kind::Clock) {
                        minute.events += 1;
                    }
                } else {
                    *minute.errors.entry(status).or_default() += 1;
                }
            });
        }
        let m = rows.len();
        let complete = {
            let stats = stats.lock().unwrap();
            Instant::now() >= start + Duration::from_secs(60 * (m as u64 + 1))
                && stats[m].done == stats[m].scheduled
        };
        if complete {
            rows.push(print_row(m, &stats, &arrivals, start, &probe).await);
        }
        tokio::time::sleep_until(tick.into()).await;
    }

    // Nothing may be left behind: every delivery arrives and no consumer holds a message.
    let expected = stats
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.events)
        .sum::<usize>()
        * HOOKS;
    let drained = Instant::now() + Duration::from_secs(60);
    let (arrived, pending) = loop {
        let arrived = arrivals.lock().unwrap().len();
        let pending = probe.pending().await;
        if (arrived >= expected && pending == Some(0)) || Instant::now() > drained {
            break (arrived, pending);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let errors: usize = stats
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.errors.values().sum::<usize>())
        .sum();
    let (second, last) = (&rows[1], &rows[rows.len() - 1]);
    // Growth is what a soak looks for (a leak, a queue that builds): a p99 or a memory that falls
    // is flat enough.
    let drift = |a: f64, b: f64| (b - a) / a;
    // One minute's p99 is its 42nd slowest request, which one pause of a shared machine moves by
    // a third: p99 is judged on the median of up to three minutes early (from the second) and
    // three late.
    let w = ((rows.len() - 1) / 3).clamp(1, 3);
    let median = |rows: &[Row]| {
        let mut p: Vec<f64> = rows.iter().map(|r| r.p99_ms).collect();
        p.sort_by(f64::total_cmp);
        p[p.len() / 2]
    };
    let (early, late) = (median(&rows[1..1 + w]), median(&rows[rows.len() - w..]));
    let p99_drift = drift(early, late);
    let rss_drift: Vec<(&str, f64)> = SERVICES
        .iter()
        .zip(second.rss_kib.iter().zip(&last.rss_kib))
        .map(|(s, (a, b))| (*s, drift(*a as f64, *b as f64)))
        .collect();
    let worst_rss = rss_drift
        .iter()
        .copied()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or(("none", 0.0));
    let verdict = format!(
        "errors: {errors}; p99 late vs early (median of {w} minute(s) each): {early:.2} → {late:.2} ms, \
         {:+.1} % (last minute vs the second alone: {:+.1} %); memory, the largest growth from the second \
         minute to the last: {} {:+.1} %; after the load: {arrived} of {expected} deliveries arrived, \
         JetStream pending {}",
        (late / early - 1.0) * 100.0,
        (last.p99_ms / second.p99_ms - 1.0) * 100.0,
        worst_rss.0,
        worst_rss.1 * 100.0,
        pending.map_or("unknown".to_owned(), |p| p.to_string())
    );
    println!("\n{verdict}");
    let mut failed = Vec::new();
    if errors > 0 {
        failed.push(format!("{errors} errors"));
    }
    if p99_drift > FLAT {
        failed.push(format!("p99 grew {:.1} %", p99_drift * 100.0));
    }
    for (service, d) in rss_drift.iter().filter(|(_, d)| *d > FLAT) {
        failed.push(format!("{service}'s memory grew {:.1} %", d * 100.0));
    }
    if arrived < expected {
        failed.push(format!("{} deliveries missing", expected - arrived));
    }
    if pending != Some(0) {
        failed.push("messages still pending in JetStream".to_owned());
    }
    let outcome = if failed.is_empty() {
        "passed".to_owned()
    } else {
        format!("failed: {}", failed.join("; "))
    };
    let table: Vec<&str> = rows.iter().map(|r| r.line.as_str()).collect();
    super::write_doc(
        Some("## Soak"),
        &format!(
            "## Soak\n\nWritten by `deploy/local/bench.sh --scenario soak --minutes {minutes}`: {load}. \
             Latencies are timed from each request's scheduled send; memory, connections and \
             JetStream pending are read at the end of each minute.\n\n{}\n\n{head}\n{}\n\n\
             {verdict}. The soak {outcome}.",
            super::machine(),
            table.join("\n")
        ),
    )?;
    eprintln!("written to docs/benchmarks.md");
    if failed.is_empty() {
        println!("soak passed");
        Ok(())
    } else {
        Err(format!("soak {outcome}").into())
    }
}

/// Prints minute `m`'s row (its memory, connections and pending read now, at its end).
async fn print_row(
    m: usize,
    stats: &Mutex<Vec<Minute>>,
    arrivals: &Mutex<Vec<Instant>>,
    start: Instant,
    probe: &Probe,
) -> Row {
    let (requests, errors, p50, p99) = {
        let mut stats = stats.lock().unwrap();
        let minute = &mut stats[m];
        minute.latencies_us.sort_unstable();
        let at = |p: f64| {
            let l = &minute.latencies_us;
            if l.is_empty() {
                return f64::NAN;
            }
            l[((l.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
        };
        let errors = if minute.errors.is_empty() {
            "none".to_owned()
        } else {
            minute
                .errors
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        (minute.scheduled, errors, at(0.5), at(0.99))
    };
    let (from, to) = (
        start + Duration::from_secs(60 * m as u64),
        start + Duration::from_secs(60 * (m as u64 + 1)),
    );
    let deliveries = arrivals
        .lock()
        .unwrap()
        .iter()
        .filter(|a| **a >= from && **a < to)
        .count();
    let rss_kib: Vec<u64> = SERVICES
        .iter()
        .map(|s| memory_kib(s).map_or(0, |(_, now)| now))
        .collect();
    let connections = probe.connections().await;
    let pending = probe.pending().await;
    let line = format!(
        "| {} | {requests} | {errors} | {p50:.2} | {p99:.2} | {deliveries} | {} | {} | {} |",
        m + 1,
        rss_kib
            .iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" | "),
        connections.map_or("?".to_owned(), |c| c.to_string()),
        pending.map_or("?".to_owned(), |p| p.to_string()),
    );
    println!("{line}");
    Row {
        line,
        p99_ms: p99,
        rss_kib,
    }
}

/// A receiver of webhook deliveries in this process; its URL.
async fn receiver(arrivals: Arc<Mutex<Vec<Instant>>>) -> Result<String, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/soak", listener.local_addr()?);
    let app = axum::Router::new().fallback(move || {
        let arrivals = arrivals.clone();
        async move {
            arrivals.lock().unwrap().push(Instant::now());
            "ok"
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

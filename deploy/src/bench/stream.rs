//! `--scenario stream`: the public event stream (`GET /api/v1/events/stream`).
//!
//! - 100 open streams (20 read-only keys, 5 streams each, the most a key may hold) of an org of
//!   1,000 employees; clock events offered at a fixed 200 per second (each employee clocks in,
//!   then out); the time from each event's 2xx at the gateway to its arrival on every stream
//!   (targets p50 ≤ 5 ms, p99 ≤ 50 ms, none missing);
//! - the gateway's resident memory with 1,000 idle streams open, against the same gateway before
//!   they opened (target ≤ 20 KiB per idle stream).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Args, Phase, Report, memory_kib, setup, table};

type Error = Box<dyn std::error::Error>;

const STREAMS: usize = 100;
const RATE: u64 = 200;
const IDLE_STREAMS: usize = 1000;
const PER_KEY: usize = 5;
/// Keys made in one org: an org has at most 50 live ones, its own bench key among them.
const KEYS_PER_ORG: usize = 40;

/// `n` read-only keys of the org `key` belongs to.
async fn keys(
    args: &Args,
    client: &reqwest::Client,
    key: &str,
    n: usize,
) -> Result<Vec<String>, Error> {
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let res: serde_json::Value = client
            .post(format!("{}/api/v1/api-keys", args.url))
            .header("X-API-Key", key)
            .json(&serde_json::json!({"name": format!("stream reader {i}"), "preset": "read-only"}))
            .send()
            .await?
            .json()
            .await?;
        keys.push(
            res["data"]["key"]
                .as_str()
                .ok_or_else(|| format!("key not created: {res}"))?
                .to_owned(),
        );
    }
    Ok(keys)
}

/// Opens one stream; its response head has arrived when this returns.
async fn open(sse: &reqwest::Client, url: &str, key: &str) -> Result<reqwest::Response, Error> {
    let res = sse
        .get(format!("{url}/api/v1/events/stream"))
        .header("X-API-Key", key)
        .send()
        .await?;
    if res.status() != 200 {
        return Err(format!("stream refused: {} {}", res.status(), res.text().await?).into());
    }
    Ok(res)
}

pub async fn stream_bench(
    args: &Args,
    client: &reqwest::Client,
    report: &mut Report,
) -> Result<(), Error> {
    let employees = 1000;
    eprintln!("stream: an org of {employees} employees, {STREAMS} streams…");
    let org = Args {
        employees,
        ..args.clone()
    };
    let key = setup(&org, client).await?;
    let readers = keys(args, client, &key, STREAMS / PER_KEY).await?;
    let sse = reqwest::Client::builder().build()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut streams = Vec::new();
    for i in 0..STREAMS {
        let mut res = open(&sse, &args.url, &readers[i / PER_KEY]).await?;
        let tx = tx.clone();
        streams.push(tokio::spawn(async move {
            let mut buf = String::new();
            while let Ok(Some(chunk)) = res.chunk().await {
                let at = Instant::now();
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    let kind = frame
                        .lines()
                        .find_map(|l| l.strip_prefix("event: "))
                        .map(str::to_owned);
                    let code = frame
                        .split("\"employee_code\":\"")
                        .nth(1)
                        .and_then(|s| s.split('"').next());
                    if let (Some(kind), Some(code)) = (kind, code) {
                        let _ = tx.send((format!("{code} {kind}"), at));
                    }
                }
            }
        }));
    }
    drop(tx);

    // 200 events a second: every employee clocks in, then every one clocks out.
    let events: Vec<(String, &str)> = ["clock-in", "clock-out"]
        .iter()
        .flat_map(|action| (0..employees).map(move |i| (format!("B{i:05}"), *action)))
        .collect();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / RATE as f64);
    let mut tasks = Vec::with_capacity(events.len());
    for (n, (code, action)) in events.iter().cloned().enumerate() {
        tokio::time::sleep_until((started + interval * n as u32).into()).await;
        let (client, url, key, sent, failed) = (
            client.clone(),
            args.url.clone(),
            key.clone(),
            sent.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(format!("{url}/api/v1/attendance/{action}"))
                .header("X-API-Key", &key)
                .json(&serde_json::json!({"nip": code}))
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => {
                    sent.lock()
                        .unwrap()
                        .insert(format!("{code} {action}"), Instant::now());
                }
                _ => {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let offered = started.elapsed();
    // Everything that will arrive has arrived a moment after the last 2xx.
    let mut arrivals = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while arrivals.len() < events.len() * STREAMS {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(a)) => arrivals.push(a),
            _ => break,
        }
    }
    for s in streams {
        s.abort();
    }
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let mut latencies: Vec<u64> = arrivals
        .iter()
        .filter_map(
            |(id, at)| Some(at.saturating_duration_since(*sent.get(id)?).as_micros() as u64),
        )
        .collect();
    latencies.sort_unstable();
    let expected = sent.len() * STREAMS;
    let missing = expected.saturating_sub(latencies.len());
    let failed = failed.load(std::sync::atomic::Ordering::Relaxed);
    let phase = Phase {
        name: format!("{STREAMS} streams, event 2xx → client"),
        requests: latencies.len(),
        errors: missing,
        elapsed: offered,
        latencies_us: latencies,
    };
    println!(
        "\nEvent stream: {} clock events at {RATE}/s in {:.1} s ({failed} refused), each to {STREAMS} streams ({missing} deliveries missing)\n",
        sent.len(),
        offered.as_secs_f64()
    );
    table(&[&phase]);
    report.add(
        format!("stream: {STREAMS} streams, {RATE} clock events/s, event 2xx → client"),
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, {missing} of {expected} missing",
            phase.percentile(0.5),
            phase.percentile(0.99)
        ),
        String::new(),
        String::new(),
        "p50 ≤ 5 ms, p99 ≤ 50 ms, none missing",
        Some(
            missing == 0
                && failed == 0
                && phase.percentile(0.5) <= 5.0
                && phase.percentile(0.99) <= 50.0,
        ),
    );
    drop(sent);

    // 1,000 idle streams: the gateway's memory before and after they open. Their keys come from
    // several small orgs, as an org has at most 50 live keys.
    let mut idle_keys = Vec::with_capacity(IDLE_STREAMS / PER_KEY);
    let small = Args {
        employees: 1,
        ..args.clone()
    };
    while idle_keys.len() < IDLE_STREAMS / PER_KEY {
        let owner = setup(&small, client).await?;
        let n = (IDLE_STREAMS / PER_KEY - idle_keys.len()).min(KEYS_PER_ORG);
        idle_keys.extend(keys(args, client, &owner, n).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let Some((_, before)) = memory_kib("gateway") else {
        eprintln!("stream: no gateway pid in .clokio/run; idle memory not measured");
        return Ok(());
    };
    let mut idle = Vec::with_capacity(IDLE_STREAMS);
    for i in 0..IDLE_STREAMS {
        idle.push(open(&sse, &args.url, &idle_keys[i / PER_KEY]).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, after) = memory_kib("gateway").ok_or("gateway gone")?;
    drop(idle);
    let per = (after.saturating_sub(before)) as f64 / IDLE_STREAMS as f64;
    println!(
        "\nGateway RSS: {before} KiB before, {after} KiB with {IDLE_STREAMS} idle streams: {per:.1} KiB per stream"
    );
    report.add(
        format!("stream: gateway RSS per idle stream ({IDLE_STREAMS} open)"),
        format!("{per:.1} KiB"),
        format!("{:.1} MiB before", before as f64 / 1024.0),
        String::new(),
        "≤ 20 KiB",
        Some(per <= 20.0),
    );
    Ok(())
}

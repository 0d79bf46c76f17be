//! The `webhook` scenario: clock events fanned out to webhooks received in this process.

use super::{Args, Phase, Report, futures_join, setup, subscribe, table};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clock events fanned out to 10 webhooks each, received here.
pub(super) async fn webhook_bench(
    args: &Args,
    client: &reqwest::Client,
    report: &mut Report,
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
        "\nevent → delivery p50 {:.1} ms, p99 {:.1} ms (targets ≤ 3 ms, ≤ 10 ms), at {} deliveries/s offered",
        latency.percentile(0.5),
        latency.percentile(0.99),
        rate as usize * hooks
    );
    println!(
        "burst: {} deliveries in {:.2} s = {:.0} deliveries/s (target ≥ 7,500); the events took {:.2} s to send; missing: {}",
        drain.requests,
        drain.elapsed.as_secs_f64(),
        drain.throughput(),
        events_sent.as_secs_f64(),
        drain.errors
    );
    report.add(
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
        "p50 ≤ 3 ms, p99 ≤ 10 ms",
        Some(latency.percentile(0.5) <= 3.0 && latency.percentile(0.99) <= 10.0),
    );
    report.add(
        format!("webhook deliveries, burst of {burst_events} events × {hooks}"),
        format!(
            "{:.0} deliveries/s, {} missing",
            drain.throughput(),
            drain.errors
        ),
        String::new(),
        String::new(),
        "≥ 7,500/s, none missing",
        Some(drain.throughput() >= 7500.0 && drain.errors == 0),
    );
    Ok(())
}

//! The `clock` scenario: clock-in/clock-out cycles against single-row `INSERT`s into the same
//! Postgres.

use super::{Args, Phase, Probe, Report, collect, healthz_baseline, setup, table};
use std::time::{Duration, Instant};

/// Clock-in/clock-out cycles: each connection owns a slice of the employees and walks it, clocking
/// each in and then out, so every request is a state change with its event. Each connection first
/// clocks its employees in once, untimed: the timed phase measures the steady state (every
/// employee known to the caches and with a state row), not an org's first punches.
pub(super) async fn clock_bench(
    args: &Args,
    client: &reqwest::Client,
    report: &mut Report,
) -> Result<(), Box<dyn std::error::Error>> {
    eprintln!("creating an org with {} employees…", args.employees);
    let key = setup(args, client).await?;
    let seconds = Duration::from_secs(args.seconds);
    let health = healthz_baseline(args, client).await;
    let concurrency = args.concurrency.min(args.employees).max(1);
    let warm = std::sync::Arc::new(tokio::sync::Barrier::new(concurrency + 1));
    let mut tasks = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let (client, url, key) = (client.clone(), args.url.clone(), key.clone());
        let warm = warm.clone();
        let mine: Vec<String> = (w..args.employees)
            .step_by(concurrency)
            .map(|i| format!("B{i:05}"))
            .collect();
        tasks.push(tokio::spawn(async move {
            let punch = |action: &str, nip: &str| {
                client
                    .post(format!("{url}/api/v1/attendance/{action}"))
                    .header("X-API-Key", &key)
                    .json(&serde_json::json!({ "nip": nip }))
                    .send()
            };
            let mut latencies = Vec::with_capacity(16_384);
            let mut errors = 0usize;
            for nip in &mine {
                let res = punch("clock-in", nip).await;
                if !res.is_ok_and(|res| res.status().is_success()) {
                    errors += 1;
                }
            }
            warm.wait().await;
            let deadline = Instant::now() + seconds;
            // Every employee is in: out first.
            let mut turn = mine.len();
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
                match punch(action, nip).await {
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
    warm.wait().await;
    let started = Instant::now();
    let clock = collect("POST clock-in / clock-out", tasks, started).await;
    // The baseline is what the database does alone: not while the services still work off the
    // clock phase's events (a backlog that once cut it by a third, more for a slower stack).
    Probe::connect().await?.drained().await?;
    let insert = insert_baseline(concurrency, seconds).await?;
    println!(
        "\nClock events, {} employees, {} connections, {} s per phase\n",
        args.employees, concurrency, args.seconds
    );
    table(&[&health, &insert, &clock]);
    println!(
        "\nclock events/s: {:.0} (target ≥ 3,000); clock/healthz throughput ratio: {:.3}; \
         clock/INSERT ratio: {:.3} (target ≥ 0.25)",
        clock.throughput(),
        clock.throughput() / health.throughput(),
        clock.throughput() / insert.throughput()
    );
    report.add(
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
        "≥ 3,000 events/s and ratio ≥ 0.25",
        Some(clock.throughput() >= 3000.0 && clock.throughput() / insert.throughput() >= 0.25),
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

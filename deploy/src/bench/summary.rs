//! The `summary` scenario: the monthly summary as JSON and CSV, with the peak memory of the
//! services on its path.

use super::{
    Args, Memory, Report, import_day, keep_org, kept_org, memory_kib, sequential, settle, setup,
    table,
};
use std::time::{Duration, Instant};

/// The monthly summary of January 2026 for an org whose employees worked all 22 work days.
pub(super) async fn summary_bench(
    args: &Args,
    client: &reqwest::Client,
    report: &mut Report,
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
    let kept = kept_org(
        &state,
        |key| async move { complete(key).await == Some(true) },
    )
    .await;
    let key = match kept {
        Some(key) => key,
        None => {
            eprintln!(
                "creating an org with {n} employees × {} work days (once; kept in {})…",
                days.len(),
                state.display()
            );
            let key = setup(args, client).await?;
            for day in &days {
                import_day(args, client, &key, &day.to_string(), n, 30).await?;
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
            settle().await?;
            keep_org(&state, &key)?;
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
        "\nJSON p50: {:.1} ms, CSV p50: {:.1} ms (target ≤ 100 ms each); full/empty p50 ratio: {:.2}",
        full.percentile(0.5),
        csv.percentile(0.5),
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
    report.add(
        format!("monthly summary JSON, {n} × 22 days"),
        format!("p50 {:.1} ms", full.percentile(0.5)),
        format!("empty month p50 {:.1} ms", empty.percentile(0.5)),
        format!("{:.1}", full.percentile(0.5) / empty.percentile(0.5)),
        "≤ 100 ms",
        Some(full.percentile(0.5) <= 100.0),
    );
    report.add(
        format!("monthly summary CSV, {n} × 22 days"),
        format!("p50 {:.1} ms", csv.percentile(0.5)),
        format!("JSON p50 {:.1} ms", full.percentile(0.5)),
        format!("{:.2}", csv.percentile(0.5) / full.percentile(0.5)),
        "≤ 100 ms",
        Some(csv.percentile(0.5) <= 100.0),
    );
    println!("\nMemory (from /proc, processes started by up.sh):");
    show("before", before);
    show("after the CSV runs", after_csv);
    show("after the JSON runs", after_json);
    Ok(())
}

//! The `daily` scenario: the daily report of an org whose employees all attended.

use super::{Args, Report, import_day, keep_org, kept_org, sequential, settle, setup, table};

/// The daily report of an org whose `args.employees` employees all attended one date, against the
/// same report for a date nobody attended. The org is kept in `.clokio/` and reused while it
/// still answers, since creating 10,000 employees takes a while.
pub(super) async fn daily_bench(
    args: &Args,
    client: &reqwest::Client,
    report: &mut Report,
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
    let attended = |key: String| async move {
        let Ok(res) = get(&key, &format!("/api/v1/attendance/daily?date={date}")).await else {
            return false;
        };
        res.status() == 200
            && res.json::<serde_json::Value>().await.is_ok_and(|body| {
                body["data"]
                    .as_array()
                    .is_some_and(|a| a.len() == args.employees)
            })
    };
    let key = match kept_org(&state, attended).await {
        Some(key) => key,
        None => {
            eprintln!(
                "creating an org with {} employees (once; kept in {})…",
                args.employees,
                state.display()
            );
            let key = setup(args, client).await?;
            import_day(args, client, &key, date, args.employees, 60).await?;
            settle().await?;
            keep_org(&state, &key)?;
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
    report.add(
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

//! The `read` and `paging` scenarios: the gateway's read path against `/healthz`, at the
//! most it serves and at a fixed rate, and the employee list's first page in a large org.

use super::{Args, Report, closed_loop, fixed_rate, healthz_baseline, setup, table};
use std::time::Duration;

/// The gateway's read path against `/healthz` (module docs).
pub(super) async fn read_bench(
    args: &Args,
    client: &reqwest::Client,
    report: &mut Report,
) -> Result<(), Box<dyn std::error::Error>> {
    let key = setup(args, client).await?;
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
    let health = healthz_baseline(args, client).await;
    let read = closed_loop(
        &format!("GET {} ({} employees)", args.path, args.employees),
        client,
        &employees,
        Some(&key),
        args.concurrency,
        seconds,
    )
    .await;
    let (fixed, fixed_from_send, pacer) =
        fixed_rate(client, &employees, &args.path, &key, args.rate, seconds).await;
    // The floor under that p99: the bare HTTP path at the same rate, paced the same way, so a
    // machine's own stalls (seen here: a kernel thread holding a core for 4 ms twice a second)
    // show beside the read path's tail.
    let healthz = format!("{}/healthz", args.url);
    let (fixed_health, _, _) =
        fixed_rate(client, &healthz, "/healthz", &key, args.rate, seconds).await;

    println!(
        "\nGateway read path, {} connections, {} s per phase\n",
        args.concurrency, args.seconds
    );
    table(&[
        &health,
        &read,
        &fixed,
        &fixed_from_send,
        &pacer,
        &fixed_health,
    ]);
    let ratio = read.throughput() / health.throughput();
    let p99 = fixed.percentile(0.99);
    let floor = fixed_health.percentile(0.99);
    println!(
        "\nread/healthz throughput ratio: {ratio:.3} (target ≥ 0.35); p99 at {} req/s: {p99:.2} ms \
         (target ≤ 3 ms; `/healthz` at the same rate {floor:.2} ms)",
        args.rate,
    );
    report.add(
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
    report.add(
        format!("read path p99 at {} req/s offered", args.rate),
        format!("{p99:.2} ms"),
        format!("`/healthz` {floor:.2} ms"),
        String::new(),
        "≤ 3 ms",
        Some(p99 <= 3.0),
    );
    Ok(())
}

/// The first page of 50 employees of an org of `args.employees` (10,000 in the figure),
/// against the whole list as it was the only answer before pages, in the same run.
pub(super) async fn paging_bench(
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

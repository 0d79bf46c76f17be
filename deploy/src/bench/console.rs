//! `--scenario console`: the admin console's pages and live board, one request at a time against
//! a static asset the console serves in the same run (the fixed cost of its HTTP path):
//!
//! - the Employees page, first page of an org of 10,000 employees (target p50 ≤ 30 ms);
//! - Attendance > Today for 1,000 employees, half of them clocked in (target p50 ≤ 100 ms);
//! - 100 open live boards of that org: the time from each clock-in's 2xx at the gateway to its
//!   row arriving on every board (target p99 ≤ 1 s).
//!
//! The admin signs in through the console's own form, as a browser does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clokio_bus::Bus;
use clokio_bus::ids::OrgId;
use clokio_bus::ops::{AdminCreate, AdminCreateOp};
use clokio_bus::types::Email;
use clokio_runtime::config::BusConfig;

use super::{Args, Phase, Report, sequential_get, setup, table};

type Error = Box<dyn std::error::Error>;

/// A signed-in console session: its cookie header.
struct Session(String);

/// Makes an admin of `org` and signs in through the form.
async fn sign_in(console: &str, org: OrgId) -> Result<Session, Error> {
    let config = BusConfig::from_env()?;
    let nats = async_nats::connect(config.servers()).await?;
    let bus = Bus::new(nats, config.subjects, Duration::from_secs(20));
    let email = format!("bench-admin-{}@example.com", super::chrono_free_stamp());
    let password = "bench admin password";
    bus.call::<AdminCreateOp>(&AdminCreate {
        org_id: org,
        email: Email::parse(&email)?,
        name: "Bench Admin".to_owned(),
        password: Some(password.to_owned()),
        location: None,
    })
    .await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form = client.get(format!("{console}/sign-in")).send().await?;
    let cookie = form
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("no sign-in cookie")?
        .to_owned();
    let html = form.text().await?;
    let token = html
        .split(r#"name="_csrf" value=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .ok_or("no CSRF token on the sign-in page")?
        .to_owned();
    let res = client
        .post(format!("{console}/sign-in"))
        .header("cookie", cookie)
        .header("origin", console)
        .form(&[
            ("_csrf", token.as_str()),
            ("email", &email),
            ("password", password),
        ])
        .send()
        .await?;
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.contains("clokio_session="))
        .and_then(|c| c.split(';').next())
        .ok_or_else(|| format!("sign-in failed ({})", res.status()))?
        .to_owned();
    Ok(Session(session))
}

pub async fn console_bench(
    args: &Args,
    client: &reqwest::Client,
    report: &mut Report,
) -> Result<(), Error> {
    let console = args.console_url.trim_end_matches('/').to_owned();
    let runs = (args.seconds as usize * 5).max(30);

    eprintln!("console: an org of 10,000 employees and one of 1,000…");
    let big = Args {
        employees: 10_000,
        ..args.clone()
    };
    let (_, big_org) = setup_org(&big, client).await?;
    let small = Args {
        employees: 1_000,
        ..args.clone()
    };
    let (key, small_org) = setup_org(&small, client).await?;
    // Half of the small org at work.
    for i in 0..500 {
        let res = client
            .post(format!("{}/api/v1/attendance/clock-in", args.url))
            .header("X-API-Key", &key)
            .json(&serde_json::json!({"nip": format!("B{i:05}")}))
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(format!("clock-in failed: {}", res.text().await?).into());
        }
    }
    let big_session = sign_in(&console, big_org).await?;
    let small_session = sign_in(&console, small_org).await?;

    let home = client
        .get(format!("{console}/employees"))
        .header("cookie", &big_session.0)
        .send()
        .await?
        .text()
        .await?;
    let css = home
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|h| h.starts_with("/assets/") && h.ends_with(".css"))
        .ok_or("no stylesheet link on the Employees page")?
        .to_owned();
    let (asset, _) = sequential_get(
        client,
        &format!("{console}{css}"),
        None,
        "static asset (CSS)".into(),
        runs,
    )
    .await?;
    let (employees, employees_bytes) = sequential_get(
        client,
        &format!("{console}/employees"),
        Some(("cookie", &big_session.0)),
        "Employees page, 10,000 employees".into(),
        runs,
    )
    .await?;
    let (today, today_bytes) = sequential_get(
        client,
        &format!("{console}/attendance/today"),
        Some(("cookie", &small_session.0)),
        "Today, 1,000 employees".into(),
        runs,
    )
    .await?;
    println!("\nConsole pages, one request at a time, {runs} requests per phase\n");
    table(&[&asset, &employees, &today]);
    println!(
        "\nEmployees page: {:.0} KiB, p50 {:.2} ms ({:.1}× the asset); Today: {:.0} KiB, p50 {:.2} ms ({:.1}× the asset)",
        employees_bytes as f64 / 1024.0,
        employees.percentile(0.5),
        employees.percentile(0.5) / asset.percentile(0.5),
        today_bytes as f64 / 1024.0,
        today.percentile(0.5),
        today.percentile(0.5) / asset.percentile(0.5),
    );
    report.add(
        "console: Employees page, first page of 10,000".into(),
        format!("p50 {:.2} ms", employees.percentile(0.5)),
        format!("static asset p50 {:.2} ms", asset.percentile(0.5)),
        format!("{:.1}", employees.percentile(0.5) / asset.percentile(0.5)),
        "≤ 30 ms",
        Some(employees.percentile(0.5) <= 30.0),
    );
    report.add(
        "console: Today, 1,000 employees".into(),
        format!("p50 {:.2} ms", today.percentile(0.5)),
        format!("static asset p50 {:.2} ms", asset.percentile(0.5)),
        format!("{:.1}", today.percentile(0.5) / asset.percentile(0.5)),
        "≤ 100 ms",
        Some(today.percentile(0.5) <= 100.0),
    );

    live_boards(args, &console, &key, &small_session, report).await
}

/// An org of `args.employees` as the other scenarios make it; returns its key and id.
async fn setup_org(args: &Args, client: &reqwest::Client) -> Result<(String, OrgId), Error> {
    let key = setup(args, client).await?;
    let res: serde_json::Value = client
        .get(format!("{}/api/v1/organization", args.url))
        .header("X-API-Key", &key)
        .send()
        .await?
        .json()
        .await?;
    let org = res["data"]["id"]
        .as_str()
        .ok_or("no organization id")?
        .parse::<OrgId>()
        .map_err(|_| "bad organization id")?;
    Ok((key, org))
}

/// 100 boards open; clock-ins one after another; each row's arrival on each board.
async fn live_boards(
    args: &Args,
    console: &str,
    key: &str,
    session: &Session,
    report: &mut Report,
) -> Result<(), Error> {
    const BOARDS: usize = 100;
    const EVENTS: usize = 30;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let sse = reqwest::Client::builder().build()?;
    let mut boards = Vec::new();
    for _ in 0..BOARDS {
        let mut res = sse
            .get(format!("{console}/attendance/live"))
            .header("cookie", &session.0)
            .header("accept", "text/event-stream")
            .send()
            .await?;
        if res.status() != 200 {
            return Err(format!("live board refused: {}", res.status()).into());
        }
        let tx = tx.clone();
        boards.push(tokio::spawn(async move {
            let mut buf = String::new();
            while let Ok(Some(chunk)) = res.chunk().await {
                let at = Instant::now();
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let event: String = buf.drain(..end + 2).collect();
                    if let Some(code) = event
                        .split("\"code\":\"")
                        .nth(1)
                        .and_then(|s| s.split('"').next())
                    {
                        let _ = tx.send((code.to_owned(), at));
                    }
                }
            }
        }));
    }
    drop(tx);
    // A board is subscribed before the console answers its request, so all are open now.
    let http = reqwest::Client::new();
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Vec::new();
    for i in 0..EVENTS {
        let code = format!("B{:05}", 500 + i);
        let res = http
            .post(format!("{}/api/v1/attendance/clock-in", args.url))
            .header("X-API-Key", key)
            .json(&serde_json::json!({"nip": code}))
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(format!("clock-in failed: {}", res.text().await?).into());
        }
        let at = Instant::now();
        sent.insert(code.clone(), at);
        // Every board's row for this code, or a timeout.
        let mut seen = 0;
        let deadline = at + Duration::from_secs(5);
        while seen < BOARDS {
            match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                Ok(Some((c, arrived))) => {
                    if let Some(s) = sent.get(&c) {
                        latencies.push(arrived.saturating_duration_since(*s).as_micros() as u64);
                        if c == code {
                            seen += 1;
                        }
                    }
                }
                _ => break,
            }
        }
        if seen < BOARDS {
            eprintln!("clock-in {i}: {seen} of {BOARDS} boards within 5 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for b in boards {
        b.abort();
    }
    let expected = BOARDS * EVENTS;
    let missing = expected.saturating_sub(latencies.len());
    latencies.sort_unstable();
    let phase = Phase {
        name: format!("{BOARDS} live boards, clock-in → row"),
        requests: latencies.len(),
        errors: missing,
        elapsed: Duration::from_secs(1),
        latencies_us: latencies,
    };
    println!(
        "\nLive boards: {EVENTS} clock-ins, each to {BOARDS} open boards ({missing} rows missing)\n"
    );
    table(&[&phase]);
    report.add(
        format!("console: {BOARDS} live boards, clock-in 2xx → row on every board"),
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, {missing} missing",
            phase.percentile(0.5),
            phase.percentile(0.99)
        ),
        String::new(),
        String::new(),
        "p99 ≤ 1 s",
        Some(missing == 0 && phase.percentile(0.99) <= 1000.0),
    );
    Ok(())
}

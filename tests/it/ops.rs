//! The ops port each service serves: health, readiness of its dependencies, Prometheus metrics
//! with its bus requests by operation and outcome.

use std::net::SocketAddr;

use clokio_bus::ServiceName;
use clokio_bus::types::Plan;
use clokio_tests::{PgServer, Stack, free_port, json};

#[tokio::test]
async fn a_service_serves_health_readiness_and_metrics() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    let port = free_port();
    let mut config = stack.attendance_config();
    config.ops_addr = Some(SocketAddr::from(([127, 0, 0, 1], port)));
    let service = tokio::spawn(clokio_attendance_svc::run(config, std::future::pending()));
    stack.wait_for_replicas(ServiceName::Attendance, 1).await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    gw.clock_in(&t.key, "E-1").await.expect(200);
    gw.clock_in(&t.key, "E-1").await.expect(409);

    let ops = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let health = client.get(format!("{ops}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(format!("{ops}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap(),
        json!({"nats": "ok", "postgres": "ok"})
    );
    scrape_until(
        &format!("{ops}/metrics"),
        &[
            "clokio_bus_requests_total{operation=\"clock_in\",outcome=\"ok\"}",
            "clokio_bus_requests_total{operation=\"clock_in\",outcome=\"refused\"}",
            "clokio_bus_request_duration_seconds_bucket{operation=\"clock_in\"",
            "clokio_db_pool_connections{state=\"in_use\"}",
            "clokio_db_pool_connections{state=\"idle\"}",
            "clokio_db_pool_max_connections ",
            // The clock-in's event has left (only this stack's prefix is counted).
            "clokio_outbox_pending_rows 0\n",
            "clokio_outbox_oldest_seconds 0\n",
        ],
    )
    .await;
    service.abort();

    // webhook-svc's ops port reads its two JetStream consumers.
    let port = free_port();
    let mut config = stack.webhook_config();
    config.ops_addr = Some(SocketAddr::from(([127, 0, 0, 1], port)));
    let webhooks = tokio::spawn(clokio_webhook_svc::run(config, std::future::pending()));
    stack.wait_for_replicas(ServiceName::Webhook, 1).await;
    let mut series = Vec::new();
    for consumer in ["webhook-intake", "webhook-workers"] {
        for gauge in ["pending", "ack_pending", "redelivered"] {
            series.push(format!(
                "clokio_jetstream_consumer_{gauge}{{consumer=\"{consumer}\"}} 0\n"
            ));
        }
    }
    let series: Vec<&str> = series.iter().map(String::as_str).collect();
    scrape_until(&format!("http://127.0.0.1:{port}/metrics"), &series).await;
    webhooks.abort();
}

/// employee-svc's and reporting-svc's ops ports: readiness names their dependencies (Redis too for
/// employee-svc), and metrics read the outbox and the projection's consumer.
#[tokio::test]
async fn employee_and_reporting_svc_serve_health_readiness_and_metrics() {
    let stack = Stack::empty().await;
    let (employee_port, reporting_port) = (free_port(), free_port());
    let mut employee = stack.employee_config();
    employee.ops_addr = Some(SocketAddr::from(([127, 0, 0, 1], employee_port)));
    let employees = tokio::spawn(clokio_employee_svc::run(employee, std::future::pending()));
    let reporting = clokio_reporting_svc::Config {
        bus: stack.bus_config.clone(),
        database_url: clokio_tests::database_url(),
        db_max_connections: 4,
        max_in_flight: 16,
        ops_addr: Some(SocketAddr::from(([127, 0, 0, 1], reporting_port))),
    };
    let reports = tokio::spawn(clokio_reporting_svc::run(reporting, std::future::pending()));
    stack.wait_for_replicas(ServiceName::Employee, 1).await;
    stack.wait_for_replicas(ServiceName::Reporting, 1).await;
    let client = reqwest::Client::new();
    for (port, want) in [
        (
            employee_port,
            json!({"nats": "ok", "postgres": "ok", "redis": "ok"}),
        ),
        (reporting_port, json!({"nats": "ok", "postgres": "ok"})),
    ] {
        let ops = format!("http://127.0.0.1:{port}");
        let health = client.get(format!("{ops}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let ready = client.get(format!("{ops}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        assert_eq!(ready.json::<serde_json::Value>().await.unwrap(), want);
    }
    scrape_until(
        &format!("http://127.0.0.1:{employee_port}/metrics"),
        &[
            "clokio_outbox_pending_rows 0\n",
            "clokio_db_pool_max_connections ",
        ],
    )
    .await;
    scrape_until(
        &format!("http://127.0.0.1:{reporting_port}/metrics"),
        &[
            "clokio_jetstream_consumer_pending{consumer=\"reporting\"} 0\n",
            "clokio_jetstream_consumer_redelivered{consumer=\"reporting\"} 0\n",
            "clokio_db_pool_max_connections ",
        ],
    )
    .await;
    employees.abort();
    reports.abort();
}

/// A service whose ops port is taken does not start, and says which port: running without its
/// probes and metrics (or with another process answering them) would mislead its operator.
#[tokio::test]
async fn a_taken_ops_port_stops_the_start() {
    let stack = Stack::empty().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut config = stack.attendance_config();
    config.ops_addr = Some(addr);
    let err = clokio_attendance_svc::run(config, std::future::pending())
        .await
        .expect_err("the start fails");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on the ops port {addr}: ")),
        "{err}"
    );
    assert_eq!(stack.replicas(ServiceName::Attendance).await, 0);
}

/// After a Postgres restart, readiness comes back with the server: the idle connections the
/// restart ended are dropped by the check itself, not answered 503 one by one until traffic has
/// worn them out (a quiet service stayed unready for over a minute).
#[tokio::test]
async fn readiness_comes_back_with_a_restarted_postgres() {
    let pg = PgServer::start().await;
    // As the services' pools are: a connection is not pinged before it is handed out.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .connect(&pg.url())
        .await
        .unwrap();
    let held: Vec<_> = futures::future::join_all((0..4).map(|_| pool.acquire()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    drop(held);
    // Connections go back to the pool in a task of their own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pool.num_idle() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pool keeps four idle"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let readiness = clokio_runtime::ops_port::Readiness::new().postgres(pool.clone());
    let ops = clokio_runtime::ops_port::start(addr, "test", readiness)
        .await
        .unwrap();
    let readyz = format!("http://{addr}/readyz");
    assert_eq!(reqwest::get(&readyz).await.unwrap().status(), 200);

    pg.kill();
    let res = reqwest::get(&readyz).await.unwrap();
    assert_eq!(res.status(), 503, "down while the server is");
    pg.restart().await;
    let res = reqwest::get(&readyz).await.unwrap();
    let status = res.status();
    assert_eq!(status, 200, "{}", res.text().await.unwrap());
    ops.abort();
}

/// Scrapes `url` until every one of `series` is in the text; panics with the last text after 5 s.
async fn scrape_until(url: &str, series: &[&str]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        let missing: Vec<&&str> = series.iter().filter(|s| !text.contains(**s)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{missing:?} missing:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// One replica of a service in a rolling restart, stopped by its own signal.
struct Replica {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), Box<dyn std::error::Error + Send + Sync>>>,
}

impl Replica {
    fn start(stack: &Stack, service: ServiceName) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            let _ = stopped.await;
        };
        let task = match service {
            ServiceName::Employee => {
                tokio::spawn(clokio_employee_svc::run(stack.employee_config(), signal))
            }
            ServiceName::Attendance => tokio::spawn(clokio_attendance_svc::run(
                stack.attendance_config(),
                signal,
            )),
            other => panic!("no rolling restart for {other:?}"),
        };
        Self { stop, task }
    }

    /// Signals the replica as SIGTERM would, and waits until it has drained and exited.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Two replicas each of employee-svc and attendance-svc, restarted one at a time under steady
/// load (a new replica first, then the oldest stops and drains, as a Deployment's surge does):
/// no client request fails. The load reaches both services: clock-in/out, the daily report,
/// employee status writes (which also make attendance-svc ask employee-svc again) and lists.
#[tokio::test]
async fn a_rolling_restart_under_load_fails_no_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let mut stack = Stack::empty().await;
    let mut employees = vec![
        Replica::start(&stack, ServiceName::Employee),
        Replica::start(&stack, ServiceName::Employee),
    ];
    stack.wait_for_replicas(ServiceName::Employee, 2).await;
    let mut attendance = vec![
        Replica::start(&stack, ServiceName::Attendance),
        Replica::start(&stack, ServiceName::Attendance),
    ];
    stack.wait_for_replicas(ServiceName::Attendance, 2).await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    for i in 0..8 {
        gw.create_employee(&t.key, "Worker", json!({"employee_code": format!("W-{i}")}))
            .await;
    }
    let today = chrono::Utc::now().date_naive();
    let running = Arc::new(AtomicBool::new(true));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..8)
        .map(|i| {
            let (gw, key) = (gw.clone(), t.key.clone());
            let (running, sent, failed) = (running.clone(), sent.clone(), failed.clone());
            tokio::spawn(async move {
                let nip = json!({"nip": format!("W-{i}")});
                let mut n = 0;
                while running.load(Ordering::Relaxed) {
                    let res = match n % 5 {
                        0 => gw.post(&key, "/api/v1/attendance/clock-in", &nip).await,
                        1 => {
                            gw.get(&key, &format!("/api/v1/attendance/daily?date={today}"))
                                .await
                        }
                        2 => {
                            let path = format!("/api/v1/employees/W-{i}/status");
                            gw.patch(&key, &path, &json!({"status": "active"})).await
                        }
                        3 => gw.post(&key, "/api/v1/attendance/clock-out", &nip).await,
                        _ => gw.get(&key, "/api/v1/employees").await,
                    };
                    n += 1;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !(200..300).contains(&res.status) {
                        eprintln!("{}: {}", res.status, res.text);
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for (service, replicas) in [
        (ServiceName::Employee, &mut employees),
        (ServiceName::Attendance, &mut attendance),
    ] {
        for _ in 0..2 {
            replicas.push(Replica::start(&stack, service));
            stack.wait_for_replicas(service, 3).await;
            let started = std::time::Instant::now();
            replicas.remove(0).stop().await;
            eprintln!("{service:?} replica drained in {:?}", started.elapsed());
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }
    running.store(false, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 200, "load ran: {sent} requests");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
    futures::future::join_all(employees.into_iter().chain(attendance).map(Replica::stop)).await;
}

/// Replicas of two services starting at once on an empty database: sqlx's migrator lock lets one
/// of each apply the migrations, the others wait and find them applied, and every replica comes
/// up.
#[tokio::test]
async fn replicas_starting_together_migrate_once() {
    use sqlx::Connection;

    let name = format!("clokio_migrate_{}", uuid::Uuid::new_v4().simple());
    let admin_url = clokio_tests::database_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");

    let stack = Stack::empty().await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let mut employee = stack.employee_config();
        employee.database_url = url.clone();
        let mut attendance = stack.attendance_config();
        attendance.database_url = url.clone();
        replicas.push(tokio::spawn(clokio_employee_svc::run(
            employee,
            std::future::pending(),
        )));
        replicas.push(tokio::spawn(clokio_attendance_svc::run(
            attendance,
            std::future::pending(),
        )));
    }
    stack.wait_for_replicas(ServiceName::Employee, 3).await;
    stack.wait_for_replicas(ServiceName::Attendance, 3).await;
    for replica in &replicas {
        assert!(!replica.is_finished(), "a replica failed to start");
    }
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    for (schema, files) in [
        ("employee", std::fs::read_dir("../employee-svc/migrations")),
        (
            "attendance",
            std::fs::read_dir("../attendance-svc/migrations"),
        ),
    ] {
        let files = files.unwrap().count() as i64;
        let (applied, failed): (i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*), count(*) FILTER (WHERE NOT success) FROM {schema}._sqlx_migrations"
        ))
        .fetch_one(&mut db)
        .await
        .unwrap();
        assert_eq!((applied, failed), (files, 0), "{schema}");
    }
    for replica in replicas {
        replica.abort();
    }
    drop(db);
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

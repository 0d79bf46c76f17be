//! The ops port each service serves: health, readiness of its dependencies, Prometheus metrics
//! with its bus requests by operation and outcome.

use std::net::SocketAddr;

use clokio_bus::ServiceName;
use clokio_bus::types::Plan;
use clokio_testkit::{Stack, json};

#[tokio::test]
async fn a_service_serves_health_readiness_and_metrics() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut config = stack.attendance_config();
    config.ops_addr = Some(SocketAddr::from(([127, 0, 0, 1], port)));
    let service = tokio::spawn(clokio_attendance_svc::run(config, std::future::pending()));
    stack.wait_for_replicas(ServiceName::Attendance, 1).await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    gw.post(
        &t.key,
        "/api/v1/attendance/clock-in",
        &json!({"nip": "E-1"}),
    )
    .await
    .expect(200);
    gw.post(
        &t.key,
        "/api/v1/attendance/clock-in",
        &json!({"nip": "E-1"}),
    )
    .await
    .expect(409);

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
    let metrics = client
        .get(format!("{ops}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "clokio_bus_requests_total{operation=\"clock_in\",outcome=\"ok\"}",
        "clokio_bus_requests_total{operation=\"clock_in\",outcome=\"refused\"}",
        "clokio_bus_request_duration_seconds_bucket{operation=\"clock_in\"",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
    service.abort();
}

/// Replicas stopped one at a time under steady load (each drains what was routed to it before
/// it stopped, while a fresh replica takes over): no client request fails.
#[tokio::test]
async fn a_rolling_restart_under_load_fails_no_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    let start = |stack: &Stack| {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(clokio_attendance_svc::run(
            stack.attendance_config(),
            async move {
                let _ = rx.await;
            },
        ));
        (tx, task)
    };
    let mut replicas = vec![start(&stack), start(&stack)];
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
                let mut n = 0;
                while running.load(Ordering::Relaxed) {
                    let res = match n % 3 {
                        0 => {
                            gw.post(
                                &key,
                                "/api/v1/attendance/clock-in",
                                &json!({"nip": format!("W-{i}")}),
                            )
                            .await
                        }
                        1 => {
                            gw.get(&key, &format!("/api/v1/attendance/daily?date={today}"))
                                .await
                        }
                        _ => {
                            gw.post(
                                &key,
                                "/api/v1/attendance/clock-out",
                                &json!({"nip": format!("W-{i}")}),
                            )
                            .await
                        }
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
    for _ in 0..2 {
        // A new replica first, then the oldest one stops (as a Deployment's surge does).
        replicas.push(start(&stack));
        stack.wait_for_replicas(ServiceName::Attendance, 3).await;
        let (stop, task) = replicas.remove(0);
        let _ = stop.send(());
        task.await.unwrap().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    running.store(false, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 100, "load ran: {sent} requests");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
}

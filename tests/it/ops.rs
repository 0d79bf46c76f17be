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

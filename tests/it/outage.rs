//! NATS going away and coming back, on a server of the test's own.

use std::time::{Duration, Instant};

use clokio_bus::types::Plan;
use clokio_tests::{NatsServer, Stack};

#[tokio::test]
async fn a_nats_outage_is_503_never_500_and_recovers_by_itself() {
    let mut nats = NatsServer::start().await;
    let mut stack = Stack::on(nats.url(), Duration::from_millis(1500)).await;
    stack.start_employee_svc().await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    gw.get(&t.key, "/api/v1/employees").await.expect(200);
    let ready = gw
        .send(gw.request(reqwest::Method::GET, None, "/readyz"))
        .await;
    assert_eq!(ready.status, 200);

    nats.kill();
    // Readiness says so, and requests fail with 503/504 (auth is cached, the bus is gone).
    let mut saw_not_ready = false;
    for _ in 0..40 {
        let ready = gw
            .send(gw.request(reqwest::Method::GET, None, "/readyz"))
            .await;
        if ready.status == 503 {
            assert_eq!(ready.body["data"]["nats"], "unavailable");
            saw_not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_not_ready, "/readyz never reported NATS down");
    for _ in 0..5 {
        // An uncached read needs the bus: 503/504.
        let res = gw.get(&t.key, "/api/v1/locations").await;
        assert!(
            matches!(res.status, 503 | 504),
            "status {} during the outage: {}",
            res.status,
            res.text
        );
        assert_eq!(res.body["status"], "error");
        // The employee list was cached before the outage and Redis proves no write happened
        // since (writes go through NATS too), so it may still be served, unchanged.
        let res = gw.get(&t.key, "/api/v1/employees").await;
        match res.status {
            200 => assert_eq!(res.data(), &serde_json::json!([])),
            503 | 504 => assert_eq!(res.body["status"], "error"),
            other => panic!("status {other} during the outage: {}", res.text),
        }
    }

    nats.restart().await;
    let back = Instant::now();
    loop {
        let res = gw.get(&t.key, "/api/v1/locations").await;
        if res.status == 200 {
            break;
        }
        assert!(
            matches!(res.status, 503 | 504),
            "status {} while recovering: {}",
            res.status,
            res.text
        );
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "no recovery within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = gw
        .send(gw.request(reqwest::Method::GET, None, "/readyz"))
        .await;
    assert_eq!(ready.status, 200);
}

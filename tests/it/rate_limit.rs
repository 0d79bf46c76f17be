use std::time::Duration;

use clokio_bus::types::Plan;
use clokio_tests::{Res, Stack};

fn header_u64(res: &Res, name: &str) -> u64 {
    res.header(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn basic_plan_allows_100_then_429_with_the_true_wait() {
    let (stack, gw) = Stack::start().await;
    let org = stack.create_org(Plan::Basic, None, "UTC").await;
    let key = stack.create_key(org.id).await;
    for i in 1..=100u64 {
        let res = gw.get(&key, "/api/v1/employees").await.expect(200);
        assert_eq!(header_u64(&res, "x-ratelimit-limit"), 100);
        assert_eq!(header_u64(&res, "x-ratelimit-remaining"), 100 - i);
        let reset = header_u64(&res, "x-ratelimit-reset");
        let now = chrono::Utc::now().timestamp() as u64;
        assert!(
            reset > now && reset <= now + 61,
            "reset {reset} vs now {now}"
        );
        assert_eq!(
            res.header("ratelimit-policy"),
            Some("\"default\";q=100;w=60")
        );
    }
    let res = gw.get(&key, "/api/v1/employees").await;
    let wait = header_u64(&res, "retry-after");
    assert!((50..=60).contains(&wait), "wait {wait}");
    res.expect_error(
        429,
        &format!("Rate limit exceeded. Try again in {wait} seconds."),
    );
    // Denied requests carry the headers too.
    let res = gw.get(&key, "/api/v1/employees").await.expect(429);
    assert_eq!(header_u64(&res, "x-ratelimit-remaining"), 0);
    assert_eq!(header_u64(&res, "x-ratelimit-limit"), 100);
}

#[tokio::test]
async fn the_limit_is_exact_across_two_gateways_under_concurrency() {
    let (mut stack, gw1) = Stack::start().await;
    let gw2 = stack.start_gateway().await;
    let org = stack.create_org(Plan::Basic, None, "UTC").await;
    let key = stack.create_key(org.id).await;
    let mut handles = Vec::new();
    for i in 0..160 {
        let gw = if i % 2 == 0 { gw1.clone() } else { gw2.clone() };
        let key = key.clone();
        handles.push(tokio::spawn(async move {
            gw.get(&key, "/api/v1/locations").await.status
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for h in handles {
        match h.await.unwrap() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, limited), (100, 60));
}

#[tokio::test]
async fn enterprise_uses_the_operator_set_limit() {
    let (stack, gw) = Stack::start().await;
    let org = stack.create_org(Plan::Enterprise, Some(5), "UTC").await;
    let key = stack.create_key(org.id).await;
    for _ in 0..5 {
        let res = gw.get(&key, "/api/v1/employees").await.expect(200);
        assert_eq!(res.header("x-ratelimit-limit"), Some("5"));
    }
    gw.get(&key, "/api/v1/employees").await.expect(429);
    // Pro gets the configured Pro limit.
    let pro = stack.create_org(Plan::Pro, None, "UTC").await;
    let key = stack.create_key(pro.id).await;
    let res = gw.get(&key, "/api/v1/employees").await.expect(200);
    assert_eq!(res.header("x-ratelimit-limit"), Some("1000"));
}

#[tokio::test]
async fn redis_unreachable_keeps_serving_with_the_local_limiter() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    let mut config = stack.gateway_config();
    config.redis_url = "redis://127.0.0.1:1".to_owned();
    config.redis_timeout = Duration::from_millis(100);
    let gw = stack.start_gateway_with(config).await;
    let org = stack.create_org(Plan::Enterprise, Some(3), "UTC").await;
    let key = stack.create_key(org.id).await;
    for i in 1..=3 {
        let res = gw.get(&key, "/api/v1/employees").await.expect(200);
        assert_eq!(header_u64(&res, "x-ratelimit-remaining"), 3 - i);
    }
    gw.get(&key, "/api/v1/employees").await.expect(429);
    let ready = gw
        .send(gw.request(reqwest::Method::GET, None, "/readyz"))
        .await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body["data"]["redis"], "unavailable");
    assert_eq!(ready.body["data"]["nats"], "ok");
    let metrics = gw.metrics().await;
    assert!(metrics.value("clokio_ratelimit_fallback_total") >= 1.0);
}

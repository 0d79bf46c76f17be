use std::time::Duration;

use clokio_bus::key::{ApiKey, KeyHash};
use clokio_bus::types::Plan;
use clokio_tests::{Stack, db};
use futures::StreamExt;

#[tokio::test]
async fn every_bad_key_is_401_invalid_api_key() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let good = ApiKey::generate();
    let mut typo = t.key.clone().into_bytes();
    typo[10] = if typo[10] == b'x' { b'y' } else { b'x' };
    let cases: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("clk_your_api_key_here".to_owned()),
        Some(format!("clk_{}", "a".repeat(32))),
        Some(t.key[..35].to_owned()),
        Some(format!("Bearer {}", t.key)),
        Some(String::from_utf8(typo).unwrap()),
        // Well-formed, checksum fine, but never issued.
        Some(good.expose().to_owned()),
    ];
    for key in cases {
        let req = gw.request(reqwest::Method::GET, key.as_deref(), "/api/v1/employees");
        let res = gw.send(req).await;
        res.expect_error(401, "Invalid API key");
    }
    // And the real key works.
    gw.get(&t.key, "/api/v1/employees").await.expect(200);
}

#[tokio::test]
async fn keys_are_stored_hashed_and_last_use_is_recorded_in_batches() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let pool = db().await;
    let (hash, hint, last_used): (String, String, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as(
            "SELECT key_hash, hint, last_used_at FROM employee.api_keys WHERE org_id = $1",
        )
        .bind(t.org.id.as_uuid())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(hash, KeyHash::of(&t.key).as_str());
    assert_eq!(hint, format!("clk_…{}", &t.key[32..]));
    // The location was created with the key, so a use may already be recorded; make another.
    let before = chrono::Utc::now();
    let _ = last_used;
    gw.get(&t.key, "/api/v1/employees").await.expect(200);
    let mut seen = None;
    for _ in 0..50 {
        let (at,): (Option<chrono::DateTime<chrono::Utc>>,) =
            sqlx::query_as("SELECT last_used_at FROM employee.api_keys WHERE org_id = $1")
                .bind(t.org.id.as_uuid())
                .fetch_one(&pool)
                .await
                .unwrap();
        if at.is_some_and(|at| at >= before - chrono::Duration::milliseconds(50)) {
            seen = at;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.is_some(), "last_used_at was not updated");
    // No column of the keys table holds the secret.
    let (dump,): (String,) = sqlx::query_as(
        "SELECT string_agg(k::text, ',') FROM employee.api_keys k WHERE org_id = $1",
    )
    .bind(t.org.id.as_uuid())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!dump.contains(&t.key[4..]), "plaintext key stored");
}

#[tokio::test]
async fn no_responders_is_503_and_silence_is_504() {
    // A gateway with no employee-svc behind it.
    let mut stack = Stack::with_timeout(Duration::from_millis(300)).await;
    let gw = stack.start_gateway().await;
    let key = ApiKey::generate();
    gw.get(key.expose(), "/api/v1/employees").await.expect(503);

    // Something listens on the subject but never answers.
    let subject = stack
        .bus_config
        .subjects
        .request(clokio_bus::ServiceName::Employee, "key_verify");
    let mut silent = stack.nats.subscribe(subject.clone()).await.unwrap();
    // flush() only empties the client's buffer; receiving our own message proves the server
    // has the subscription.
    stack.nats.publish(subject, "ping".into()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), silent.next())
        .await
        .unwrap()
        .unwrap();
    let drain = tokio::spawn(async move { while silent.next().await.is_some() {} });
    let res = gw.get(key.expose(), "/api/v1/employees").await.expect(504);
    assert_eq!(res.message(), "The service did not answer in time");
    drain.abort();
}

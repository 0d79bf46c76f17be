//! Every input is bounded, and going past a bound is a clear 4xx in the envelope that changes
//! nothing: URI length, header size, body size, JSON nesting, records per import, webhooks per
//! organization.

use clokio_bus::types::Plan;
use clokio_tests::{Receiver, Stack, json};

#[tokio::test]
async fn each_bound_is_a_clear_4xx() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;

    // A URI past 8 KiB: 414 before any work.
    let long = format!("/api/v1/employees?status={}", "a".repeat(9000));
    let res = gw.get(&t.key, &long).await;
    assert_eq!(res.status, 414, "{}", res.text);
    assert_eq!(res.body["message"], "The request URI is too long");
    // Just below the bound the query is read (and its value refused as a value).
    let fits = format!("/api/v1/employees?status={}", "a".repeat(7000));
    assert_eq!(gw.get(&t.key, &fits).await.status, 422);

    // Headers past 16 KiB in all: 431 in the envelope.
    let res = gw
        .send(
            gw.request(reqwest::Method::GET, Some(&t.key), "/api/v1/employees")
                .header("X-Padding", "p".repeat(17 * 1024)),
        )
        .await;
    assert_eq!(res.status, 431, "{}", res.text);
    assert_eq!(res.body["message"], "The request headers are too large");

    // JSON nested far deeper than any body of ours: refused as a bad body, no crash.
    let deep = format!(
        "{{\"name\":\"Deep\",\"email\":\"deep@company.com\",\"location\":\"Main Office\",\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let res = gw
        .send(
            gw.request(reqwest::Method::POST, Some(&t.key), "/api/v1/employees")
                .header("content-type", "application/json")
                .body(deep),
        )
        .await;
    assert!(
        (400..500).contains(&res.status),
        "{}: {}",
        res.status,
        res.text
    );
    assert_eq!(res.body["status"], "error");
    let list = gw.get(&t.key, "/api/v1/employees").await.expect(200);
    assert_eq!(
        list.data().as_array().unwrap().len(),
        0,
        "nothing was created"
    );

    // A body past the bound: 413.
    let res = gw
        .send(
            gw.request(reqwest::Method::POST, Some(&t.key), "/api/v1/employees")
                .header("content-type", "application/json")
                .body(format!("{{\"name\":\"{}\"}}", "n".repeat(2 * 1024 * 1024))),
        )
        .await;
    assert_eq!(res.status, 413, "{}", res.text);

    // Webhooks: 100 per organization, the 101st is refused and not stored. The last ten are
    // asked for at once, twice as many as there is room for: the count and the insert are one
    // step, so exactly the room is taken.
    let receiver = Receiver::start().await;
    for i in 0..95 {
        gw.webhook(
            &t.key,
            json!({"url": format!("{}/h{i}", receiver.url), "events": ["clock-in"]}),
        )
        .await;
    }
    let bodies: Vec<_> = (95..105)
        .map(|i| json!({"url": format!("{}/h{i}", receiver.url), "events": ["clock-in"]}))
        .collect();
    let racing = futures::future::join_all(
        bodies
            .iter()
            .map(|b| gw.post(&t.key, "/api/v1/webhooks", b)),
    )
    .await;
    let mut statuses: Vec<u16> = racing.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 201, 201, 201, 201, 422, 422, 422, 422, 422]);
    let res = gw
        .post(
            &t.key,
            "/api/v1/webhooks",
            &json!({"url": format!("{}/one-more", receiver.url), "events": ["clock-in"]}),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert_eq!(
        res.body["message"],
        "An organization may have at most 100 webhooks"
    );
    let listed = gw.get(&t.key, "/api/v1/webhooks").await.expect(200);
    let urls: Vec<&str> = listed
        .data()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["url"].as_str())
        .collect();
    assert_eq!(urls.len(), 100);
    assert!(!urls.iter().any(|u| u.ends_with("/one-more")));
}

/// Error messages quote what the client sent; a line break in it must not cost the reply (it
/// travels in a NATS header): the refusal comes back as a 422.
#[tokio::test]
async fn line_breaks_in_refused_input_come_back_as_422_at_once() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let receiver = Receiver::start().await;
    // Before, each of these waited out the bus timeout and came back 504.
    let res = gw
        .post(
            &t.key,
            "/api/v1/webhooks",
            &json!({"url": format!("{}/h", receiver.url), "events": ["a\nb"]}),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
    assert!(!res.body["message"].as_str().unwrap().contains('\n'));
    let res = gw
        .post(
            &t.key,
            "/api/v1/webhooks",
            &json!({"url": format!("{}/h", receiver.url), "events": ["clock-in"], "template": "{x\r\ny}"}),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    let res = gw
        .post(
            &t.key,
            "/api/v1/attendance/import",
            &json!({"records": [{"nip": "E-1", "clock_in": "2026-01-05T08:00:00Z", "location": "x\ny"}]}),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text);
}

//! Webhooks end to end: subscriptions through the API, attendance events delivered to a capturing
//! receiver, signatures checked with the Standard Webhooks reference verifier, every platform's
//! body, every filter, retries through JetStream, the delivery log, the SSRF guard, isolation.

use std::time::Duration;

use chrono::{Duration as Span, Timelike};
use clokio_bus::types::Plan;
use clokio_tests::{Answer, Gateway, Receiver, Stack, Tenant, json};
use serde_json::Value;

use crate::attendance::{now, ts};

/// A stack (employee-svc, attendance-svc, gateway) whose webhook-svc runs with its test
/// configuration changed by `tweak`.
async fn with_webhook_config(
    tweak: impl FnOnce(&mut clokio_webhook_svc::Config),
) -> (Stack, Gateway) {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    stack.start_attendance_svc().await;
    let mut config = stack.webhook_config();
    tweak(&mut config);
    stack.start_webhook_svc_with(config).await;
    let gw = stack.start_gateway().await;
    (stack, gw)
}

/// The data of `GET path` once `done` holds for it; panics after 15 s.
async fn get_until(gw: &Gateway, t: &Tenant, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let data = gw.get(&t.key, path).await.expect(200).data().clone();
        if done(&data) {
            return data;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} did not get there within 15 s: {data}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The attempts of `delivery` (an item of a deliveries page) of webhook `id`, oldest first.
async fn attempts(gw: &Gateway, t: &Tenant, id: &str, delivery: &Value) -> Vec<Value> {
    let path = format!(
        "/api/v1/webhooks/{id}/deliveries/{}",
        delivery["id"].as_str().unwrap()
    );
    let detail = gw.get(&t.key, &path).await.expect(200);
    detail.data()["attempts"].as_array().unwrap().clone()
}

/// A receiver, Ann (`E-1`) and a webhook of `events` posting to the receiver: the webhook's id.
async fn ann_and_receiver(gw: &Gateway, t: &Tenant, events: &[&str]) -> (Receiver, String) {
    let r = Receiver::start().await;
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    let created = gw
        .webhook(
            &t.key,
            json!({"url": format!("{}/hook", r.url), "events": events}),
        )
        .await;
    (r, created["id"].as_str().unwrap().to_owned())
}

/// Tells webhook-svc's replicas that `t`'s subscriptions changed, as every change through the API
/// does: for a change a test makes in the table, behind the API's back. (Their caches of active
/// subscriptions are what first attempts are signed and sent with.)
async fn announce_subscription_change(stack: &Stack, t: &Tenant) {
    let subject = stack
        .bus_config
        .subjects
        .cache_invalidations(clokio_bus::ServiceName::Webhook);
    stack
        .nats
        .publish(subject, t.org.id.to_string().into())
        .await
        .unwrap();
    // A round trip on the same connection: the server answers it only after routing the
    // announcement, so it is on its way before anything the test does next.
    async_nats::jetstream::new(stack.nats.clone())
        .get_stream(stack.bus_config.subjects.webhook_queue().0)
        .await
        .unwrap();
}

/// The messages the work queue's consumer holds: waiting, or handed out and not yet settled.
async fn queued(stack: &Stack) -> u64 {
    let js = async_nats::jetstream::new(stack.nats.clone());
    let stream = js
        .get_stream(stack.bus_config.subjects.webhook_queue().0)
        .await
        .unwrap();
    let mut c = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("webhook-workers")
        .await
        .unwrap();
    let i = c.info().await.unwrap();
    i.num_pending + i.num_ack_pending as u64
}

/// Waits until the work queue's consumer holds `n` messages; panics after 10 s.
async fn wait_queued(stack: &Stack, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held = queued(stack).await;
        if held == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the work queue holds {held} messages, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn subscriptions_are_managed_through_the_api() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let r = Receiver::start().await;
    let res = gw
        .post(
            &t.key,
            "/api/v1/webhooks",
            &json!({"url": format!("{}/hook", r.url), "events": ["clock-in", "clock-out"],
                "filters": {"departments": ["Ops"], "time_range": {"start": "22:00", "end": "06:00"}}}),
        )
        .await
        .expect(201);
    assert_eq!(res.message(), "Webhook created successfully");
    let created = res.data().clone();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() > 30);
    assert_eq!(created["platform"], "generic");
    assert_eq!(created["active"], true);
    assert_eq!(
        created["secret_hint"],
        format!("whsec_…{}", &secret[secret.len() - 4..])
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let list = gw.get(&t.key, "/api/v1/webhooks").await.expect(200);
    assert_eq!(list.data().as_array().unwrap().len(), 1);
    assert!(!list.text.contains(&secret), "the secret is shown once");
    assert_eq!(list.data()[0]["filters"]["time_range"]["start"], "22:00");

    let res = gw
        .patch(
            &t.key,
            &format!("/api/v1/webhooks/{id}"),
            &json!({"platform": "slack", "template": "{employee_name} did {event_type}", "active": false}),
        )
        .await
        .expect(200);
    assert_eq!(res.data()["platform"], "slack");
    assert_eq!(res.data()["active"], false);
    assert_eq!(res.data()["events"], json!(["clock-in", "clock-out"]));
    let res = gw
        .patch(
            &t.key,
            &format!("/api/v1/webhooks/{id}"),
            &json!({"template": null}),
        )
        .await
        .expect(200);
    assert_eq!(res.data()["template"], Value::Null);

    let rotated = gw
        .post(
            &t.key,
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            &json!({}),
        )
        .await
        .expect(200);
    assert_ne!(rotated.data()["secret"], secret.as_str());

    for (body, message) in [
        (json!({"events": ["clock-in"]}), "The url field is required".to_owned()),
        (
            json!({"url": "https://example.com/h"}),
            "The events field is required".to_owned(),
        ),
        (
            json!({"url": "https://example.com/h", "events": ["clock-in", "clock-out", "break-start", "break-end", "correction", "clock-in"]}),
            "The events field must not have more than 5 items".to_owned(),
        ),
        (
            json!({"url": "https://example.com/h", "events": ["lunch"]}),
            "The events field contains an unknown event lunch (clock-in, clock-out, break-start, break-end, correction)".to_owned(),
        ),
        (
            json!({"url": "https://example.com/h", "events": ["clock-in"], "platform": "fax"}),
            "The selected platform is invalid (generic, slack, teams, discord or google_chat)".to_owned(),
        ),
        (
            json!({"url": "https://example.com/h", "events": ["clock-in"], "template": "Hi {name}"}),
            "The template contains an unknown placeholder {name} (known: {employee_name}, {employee_code}, {department}, {event}, {event_type}, {timestamp}, {location_name})".to_owned(),
        ),
        (
            json!({"url": "https://example.com/h", "events": ["clock-in"], "filters": {"time_range": {"start": "25:00", "end": "06:00"}}}),
            "The time_range.start field must be a time in HH:MM format".to_owned(),
        ),
        (
            json!({"url": "ftp://example.com/h", "events": ["clock-in"]}),
            "The url field must be an https URL".to_owned(),
        ),
        (
            json!({"url": "https://10.0.0.8/h", "events": ["clock-in"]}),
            "The url must not point to a private, loopback, link-local or reserved address (10.0.0.8)".to_owned(),
        ),
        (
            json!({"url": "https://[::ffff:192.168.1.1]/h", "events": ["clock-in"]}),
            "The url must not point to a private, loopback, link-local or reserved address (::ffff:192.168.1.1)".to_owned(),
        ),
        (
            json!({"url": "https://169.254.169.254/latest/meta-data", "events": ["clock-in"]}),
            "The url must not point to a private, loopback, link-local or reserved address (169.254.169.254)".to_owned(),
        ),
    ] {
        gw.post(&t.key, "/api/v1/webhooks", &body)
            .await
            .expect_error(422, &message);
    }
    // A change of url is held to the same rules, and a refused one changes nothing.
    gw.patch(
        &t.key,
        &format!("/api/v1/webhooks/{id}"),
        &json!({"url": "https://10.1.2.3/h"}),
    )
    .await
    .expect_error(
        422,
        "The url must not point to a private, loopback, link-local or reserved address (10.1.2.3)",
    );
    let res = gw
        .get(&t.key, &format!("/api/v1/webhooks/{id}"))
        .await
        .expect(200);
    assert_eq!(res.data()["url"], format!("{}/hook", r.url));
    // Every event at once (the list took at most four before).
    let all = [
        "clock-in",
        "clock-out",
        "break-start",
        "break-end",
        "correction",
    ];
    let res = gw
        .patch(
            &t.key,
            &format!("/api/v1/webhooks/{id}"),
            &json!({"events": all}),
        )
        .await
        .expect(200);
    assert_eq!(res.data()["events"], json!(all));

    // Another org sees none of it.
    let other = stack.tenant(&gw, Plan::Enterprise).await;
    gw.get(&other.key, &format!("/api/v1/webhooks/{id}"))
        .await
        .expect_error(404, "Webhook not found");
    gw.delete(&other.key, &format!("/api/v1/webhooks/{id}"))
        .await
        .expect_error(404, "Webhook not found");
    let res = gw.get(&other.key, "/api/v1/webhooks").await.expect(200);
    assert_eq!(res.data(), &json!([]));
    gw.get(&t.key, "/api/v1/webhooks/not-a-uuid")
        .await
        .expect_error(404, "Webhook not found");

    gw.delete(&t.key, &format!("/api/v1/webhooks/{id}"))
        .await
        .expect(200);
    gw.get(&t.key, &format!("/api/v1/webhooks/{id}"))
        .await
        .expect_error(404, "Webhook not found");
}

#[tokio::test]
async fn a_clock_in_reaches_a_generic_endpoint_signed() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let r = Receiver::start().await;
    gw.create_employee(
        &t.key,
        "Sarah Johnson",
        json!({"employee_code": "EMP-1042", "department": "Engineering"}),
    )
    .await;
    let created = gw
        .webhook(
            &t.key,
            json!({"url": format!("{}/hook", r.url), "events": ["clock-in"]}),
        )
        .await;
    let secret = created["secret"].as_str().unwrap();
    // Another org's webhook never hears of this org's events.
    let other = stack.tenant(&gw, Plan::Enterprise).await;
    let elsewhere = Receiver::start().await;
    gw.webhook(
        &other.key,
        json!({"url": format!("{}/other", elsewhere.url), "events": ["clock-in", "clock-out"]}),
    )
    .await;
    gw.clock_in(&t.key, "EMP-1042").await.expect(200);
    let got = r.wait_for(1, Duration::from_secs(10)).await;
    let req = &got[0];
    assert_eq!(req.path, "/hook");
    assert_eq!(req.header("content-type"), "application/json");
    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    verifier
        .verify(&req.body, &req.headers)
        .expect("a valid Standard Webhooks signature");
    let wrong = standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert!(wrong.verify(&req.body, &req.headers).is_err());
    let body = req.json();
    assert_eq!(body["type"], "clock-in");
    assert_eq!(body["data"]["employee_name"], "Sarah Johnson");
    assert_eq!(body["data"]["employee_code"], "EMP-1042");
    assert_eq!(body["data"]["department"], "Engineering");
    assert_eq!(body["data"]["location_name"], "Main Office");
    assert_eq!(body["timestamp"], body["data"]["timestamp"]);
    // Only clock-in was asked for.
    gw.clock_out(&t.key, "EMP-1042").await.expect(200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(r.received().len(), 1);
    assert!(elsewhere.received().is_empty(), "org isolation");

    // After a rotation both secrets sign, so receivers can switch over.
    let rotated = gw
        .post(
            &t.key,
            &format!(
                "/api/v1/webhooks/{}/rotate-secret",
                created["id"].as_str().unwrap()
            ),
            &json!({}),
        )
        .await
        .expect(200);
    gw.clock_in(&t.key, "EMP-1042").await.expect(200);
    let got = r.wait_for(2, Duration::from_secs(10)).await;
    let req = &got[1];
    assert_eq!(req.header("webhook-signature").split(' ').count(), 2);
    for s in [secret, rotated.data()["secret"].as_str().unwrap()] {
        standardwebhooks::Webhook::new(s)
            .unwrap()
            .verify(&req.body, &req.headers)
            .expect("both secrets verify during the overlap");
    }
    // At rest both secrets are sealed: a dump of the table shows neither.
    let (current, previous): (String, Option<String>) = sqlx::query_as(
        "SELECT secret, previous_secret FROM webhook.subscriptions WHERE id = $1::uuid",
    )
    .bind(created["id"].as_str().unwrap())
    .fetch_one(&clokio_tests::db().await)
    .await
    .unwrap();
    let previous = previous.expect("the previous secret is kept for the overlap");
    for (stored, plain) in [
        (&current, rotated.data()["secret"].as_str().unwrap()),
        (&previous, secret),
    ] {
        assert!(stored.starts_with("sealed1:"), "{stored}");
        let key = plain.trim_start_matches("whsec_");
        assert!(
            !stored.contains(key),
            "the plaintext secret is in the table"
        );
    }

    // The overlap ends 24 h after the rotation (moved to the past here): then only the new
    // secret signs.
    sqlx::query(
        "UPDATE webhook.subscriptions SET previous_until = now() - interval '1 second' \
         WHERE id = $1::uuid",
    )
    .bind(created["id"].as_str().unwrap())
    .execute(&clokio_tests::db().await)
    .await
    .unwrap();
    announce_subscription_change(&stack, &t).await;
    gw.clock_out(&t.key, "EMP-1042").await.expect(200);
    gw.clock_in(&t.key, "EMP-1042").await.expect(200);
    let got = r.wait_for(3, Duration::from_secs(10)).await;
    let req = &got[2];
    assert_eq!(req.header("webhook-signature").split(' ').count(), 1);
    standardwebhooks::Webhook::new(rotated.data()["secret"].as_str().unwrap())
        .unwrap()
        .verify(&req.body, &req.headers)
        .expect("the new secret verifies");
    assert!(
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&req.body, &req.headers)
            .is_err(),
        "the old secret no longer signs"
    );
}

#[tokio::test]
async fn chat_platforms_get_their_own_bodies_with_the_template() {
    let (stack, gw) = Stack::start().await;
    let t = stack
        .tenant_in(&gw, Plan::Enterprise, "Asia/Jerusalem")
        .await;
    let r = Receiver::start().await;
    gw.create_employee(
        &t.key,
        "Sarah Johnson",
        json!({"employee_code": "EMP-1042", "department": "Engineering"}),
    )
    .await;
    for platform in ["slack", "discord", "google_chat", "teams"] {
        gw.webhook(&t.key, json!({"url": format!("{}/{platform}", r.url), "platform": platform, "events": ["clock-in"]}),
        )
        .await;
    }
    gw.webhook(
        &t.key,
        json!({"url": format!("{}/custom", r.url), "platform": "slack", "events": ["clock-in"],
            "template": "{employee_code} of {department}: {event_type}"}),
    )
    .await;
    let at = now() - Span::minutes(30);
    gw.post(
        &t.key,
        "/api/v1/attendance/clock-in",
        &json!({"nip": "EMP-1042", "timestamp": ts(at)}),
    )
    .await
    .expect(200);
    let got = r.wait_for(5, Duration::from_secs(10)).await;
    let tz: chrono_tz::Tz = "Asia/Jerusalem".parse().unwrap();
    let local = at
        .with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string();
    let text = format!("Sarah Johnson clocked in at Main Office ({local})");
    let body = |path: &str| {
        got.iter()
            .find(|g| g.path == path)
            .unwrap_or_else(|| panic!("{path} not called"))
            .json()
    };
    assert_eq!(body("/slack"), json!({"text": text}));
    assert_eq!(body("/google_chat"), json!({"text": text}));
    assert_eq!(body("/discord"), json!({"content": text}));
    let teams = body("/teams");
    assert_eq!(teams["type"], "message");
    let card = &teams["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert_eq!(
        card["content"]["body"][0],
        json!({"type": "TextBlock", "text": text, "wrap": true})
    );
    assert_eq!(
        body("/custom"),
        json!({"text": "EMP-1042 of Engineering: clocked in"})
    );
    // Chat platforms are not signed: only generic endpoints verify.
    assert!(got.iter().all(|g| g.header("webhook-signature").is_empty()));
}

#[tokio::test]
async fn every_filter_kind_lets_through_only_what_it_names() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    gw.post(
        &t.key,
        "/api/v1/locations",
        &json!({"name": "Depot", "latitude": 10.0, "longitude": 10.0, "radius_meters": 100}),
    )
    .await
    .expect(201);
    let r = Receiver::start().await;
    for (code, dept) in [("E-1", "Ops"), ("E-2", "Sales"), ("E-3", "Ops")] {
        gw.create_employee(
            &t.key,
            code,
            json!({"employee_code": code, "department": dept}),
        )
        .await;
    }
    let (t1, t2, t3) = (
        now() - Span::hours(5),
        now() - Span::hours(1),
        now() - Span::hours(3),
    );
    let hhmm = |at: chrono::DateTime<chrono::Utc>| format!("{:02}:{:02}", at.hour(), at.minute());
    let other_day = (now() + Span::days(3))
        .format("%A")
        .to_string()
        .to_lowercase();
    for (name, filters) in [
        ("locations", json!({"locations": ["Depot"]})),
        ("employees", json!({"employees": ["E-2"]})),
        ("departments", json!({"departments": ["Ops"]})),
        ("days", json!({"days_of_week": [other_day]})),
        // From 30 minutes before t2 round midnight to 30 minutes after t1: t1 and t2, not t3.
        (
            "wrap",
            json!({"time_range": {"start": hhmm(t2 - Span::minutes(30)), "end": hhmm(t1 + Span::minutes(30))}}),
        ),
        ("all", json!({})),
    ] {
        gw.webhook(
            &t.key,
            json!({"url": format!("{}/{name}", r.url), "events": ["clock-in"], "filters": filters}),
        )
        .await;
    }
    for (code, at, place) in [
        ("E-1", t1, None),
        ("E-2", t2, Some((10.0, 10.0))),
        ("E-3", t3, None),
    ] {
        let mut body = json!({"nip": code, "timestamp": ts(at)});
        if let Some((lat, lon)) = place {
            body["latitude"] = json!(lat);
            body["longitude"] = json!(lon);
        }
        gw.post(&t.key, "/api/v1/attendance/clock-in", &body)
            .await
            .expect(200);
    }
    // all: 3, locations: 1, employees: 1, departments: 2, wrap: 2, days: 0.
    let got = r.wait_for(9, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_now = r.received();
    assert_eq!(got_now.len(), got.len(), "nothing more arrived");
    let who = |path: &str| {
        let mut codes: Vec<String> = got_now
            .iter()
            .filter(|g| g.path == path)
            .map(|g| {
                g.json()["data"]["employee_code"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        codes.sort();
        codes
    };
    assert_eq!(who("/all"), ["E-1", "E-2", "E-3"]);
    assert_eq!(who("/locations"), ["E-2"]);
    assert_eq!(who("/employees"), ["E-2"]);
    assert_eq!(who("/departments"), ["E-1", "E-3"]);
    assert_eq!(who("/wrap"), ["E-1", "E-2"]);
    assert!(who("/days").is_empty());
}

#[tokio::test]
async fn failures_are_retried_through_jetstream_and_logged() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, id) = ann_and_receiver(&gw, &t, &["clock-in", "clock-out"]).await;
    // The schedule in tests is 0 s, 1 s, 3 s.
    r.answer([
        Answer::status(500).body("x".repeat(10_000)),
        Answer::status(500),
        Answer::status(200),
    ]);
    gw.clock_in(&t.key, "E-1").await.expect(200);
    let got = r.wait_for(3, Duration::from_secs(15)).await;
    let ids: Vec<&str> = got.iter().map(|g| g.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one webhook-id across retries"
    );
    let (gap1, gap2) = (got[1].at - got[0].at, got[2].at - got[1].at);
    assert!(gap1 >= Duration::from_millis(750), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(2300), "{gap2:?}");
    assert!(gap2 > gap1, "the gap grows: {gap1:?} then {gap2:?}");

    // The attempt is recorded a moment after the receiver answered.
    let page = get_until(&gw, &t, &format!("/api/v1/webhooks/{id}/deliveries"), |d| {
        d["deliveries"][0]["status"] != "pending"
    })
    .await;
    let delivery = page["deliveries"][0].clone();
    assert_eq!(page["total"], 1);
    assert_eq!(delivery["status"], "succeeded");
    assert_eq!(delivery["attempt_count"], 3);
    let attempts = attempts(&gw, &t, &id, &delivery).await;
    let codes: Vec<i64> = attempts
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 200]);
    assert_eq!(attempts[0]["error"], "http");
    assert_eq!(attempts[2]["error"], Value::Null);
    assert_eq!(attempts[0]["trigger"], "scheduled");
    assert_eq!(
        attempts[0]["response_body"],
        "x".repeat(4096),
        "the answer's body is kept up to 4 KiB"
    );
    assert_eq!(attempts[1]["response_body"], "ok");
    assert!(attempts.iter().all(|a| a["latency_ms"].is_u64()));

    // Retry-After is honoured over the schedule (1 s, then 3 s): on a 429 as an HTTP date 4-5 s
    // ahead (whole seconds), on a 503 as 5 seconds.
    let date = (chrono::Utc::now() + chrono::Duration::seconds(5))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    r.answer([
        Answer::status(429).header("retry-after", &date),
        Answer::status(503).header("retry-after", "5"),
        Answer::status(200),
    ]);
    gw.clock_out(&t.key, "E-1").await.expect(200);
    let got = r.wait_for(6, Duration::from_secs(20)).await;
    let (gap1, gap2) = (got[4].at - got[3].at, got[5].at - got[4].at);
    assert!(
        gap1 >= Duration::from_millis(3000),
        "Retry-After date ignored: {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(4500),
        "Retry-After seconds ignored: {gap2:?}"
    );

    // Exhausted: failed after the last attempt; a manual retry sends it once more.
    r.answer([
        Answer::status(500),
        Answer::status(500),
        Answer::status(500),
    ]);
    gw.clock_in(&t.key, "E-1").await.expect(200);
    r.wait_for(9, Duration::from_secs(15)).await;
    let failed = get_until(
        &gw,
        &t,
        &format!("/api/v1/webhooks/{id}/deliveries?per_page=1"),
        |d| d["deliveries"][0]["status"] == "failed",
    )
    .await["deliveries"][0]
        .clone();
    assert_eq!(failed["attempt_count"], 3);
    let did = failed["id"].as_str().unwrap().to_owned();
    gw.post(
        &t.key,
        &format!("/api/v1/webhooks/{id}/deliveries/{did}/retry"),
        &json!({}),
    )
    .await
    .expect(202);
    r.wait_for(10, Duration::from_secs(10)).await;
    let detail = get_until(
        &gw,
        &t,
        &format!("/api/v1/webhooks/{id}/deliveries/{did}"),
        |d| d["status"] == "succeeded",
    )
    .await;
    let last = detail["attempts"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["trigger"], "manual");
    assert_eq!(last["status_code"], 200);
    // Operators see the attempts by outcome: the 500s, the 429, the 503 and the three 500s of the
    // exhausted delivery (at least: under `cargo test` other tests share the process), and the
    // successes.
    let metrics = gw.metrics().await;
    assert!(metrics.value("clokio_webhook_attempts_total{outcome=\"http\"}") >= 7.0);
    assert!(metrics.value("clokio_webhook_attempts_total{outcome=\"success\"}") >= 2.0);
}

/// A manual retry of a delivery that waits for its next scheduled attempt is one attempt more: it
/// neither uses up the schedule nor clears when the next attempt is due.
#[tokio::test]
async fn a_manual_retry_beside_a_waiting_delivery_keeps_its_schedule() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    stack.start_attendance_svc().await;
    let mut config = stack.webhook_config();
    // Three scheduled attempts, far enough apart for a manual one in between.
    config.schedule = clokio_webhook_svc::parse_schedule("0s,4s,4s").unwrap();
    stack.start_webhook_svc_with(config).await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, id) = ann_and_receiver(&gw, &t, &["clock-in"]).await;
    r.answer([
        Answer::status(500),
        Answer::status(500),
        Answer::status(500),
        Answer::status(200),
    ]);
    gw.clock_in(&t.key, "E-1").await.expect(200);
    let deliveries = format!("/api/v1/webhooks/{id}/deliveries");
    let waiting = get_until(&gw, &t, &deliveries, |d| {
        d["deliveries"][0]["attempt_count"] == 1
    })
    .await["deliveries"][0]
        .clone();
    assert_eq!(waiting["status"], "pending");
    let due = waiting["next_attempt_at"].clone();
    assert!(due.is_string(), "{waiting}");

    let did = waiting["id"].as_str().unwrap();
    gw.post(&t.key, &format!("{deliveries}/{did}/retry"), &json!({}))
        .await
        .expect(202);
    let retried = get_until(&gw, &t, &format!("{deliveries}/{did}"), |d| {
        d["attempt_count"] == 2
    })
    .await;
    assert_eq!(retried["status"], "pending");
    assert_eq!(
        retried["next_attempt_at"], due,
        "the next attempt is still due"
    );

    // The two scheduled attempts left both come: the first fails, the second succeeds.
    r.wait_for(4, Duration::from_secs(20)).await;
    let done = get_until(&gw, &t, &format!("{deliveries}/{did}"), |d| {
        d["status"] != "pending"
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempt_count"], 4);
    let triggers: Vec<&str> = done["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, ["scheduled", "manual", "scheduled", "scheduled"]);
}

/// A delivery that cannot be read (its webhook's sealed secret no longer opens) waits alone: the
/// other deliveries read in the same batch go out.
#[tokio::test]
async fn an_unreadable_webhook_secret_holds_up_only_its_own_deliveries() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let r = Receiver::start().await;
    let mut subs = Vec::new();
    for path in ["healthy", "broken"] {
        let created = gw
            .webhook(
                &t.key,
                json!({"url": format!("{}/{path}", r.url), "events": ["clock-in"]}),
            )
            .await;
        subs.push(uuid::Uuid::parse_str(created["id"].as_str().unwrap()).unwrap());
    }
    let db = stack.db().await;
    // The broken webhook's stored secret is damaged: it no longer opens with the key.
    sqlx::query(
        "UPDATE webhook.subscriptions \
         SET secret = overlay(secret placing \
             (CASE WHEN substr(secret, 12, 1) = 'A' THEN 'B' ELSE 'A' END) from 12 for 1) \
         WHERE id = $1",
    )
    .bind(subs[1])
    .execute(&db)
    .await
    .unwrap();
    // Forty deliveries of the healthy one with one of the broken one among them, queued at once
    // so that batches read them together (and, when a batch fails, bring them back together).
    const HEALTHY: usize = 40;
    let js = async_nats::jetstream::new(stack.nats.clone());
    let queue = stack.bus_config.subjects.webhook_queue().1;
    let mut acks = Vec::new();
    let mut targets = vec![subs[0]; HEALTHY];
    targets.insert(HEALTHY / 2, subs[1]);
    let mut deliveries = Vec::new();
    for sub in &targets {
        let id = uuid::Uuid::new_v4();
        sqlx::query(
            "INSERT INTO webhook.deliveries (id, org_id, subscription_id, event_id, event_type, body) \
             VALUES ($1, $2, $3, $4, 'clock-in', '{}')",
        )
        .bind(id)
        .bind(t.org.id.as_uuid())
        .bind(sub)
        .bind(uuid::Uuid::new_v4())
        .execute(&db)
        .await
        .unwrap();
        deliveries.push(id);
    }
    for id in &deliveries {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.to_string().as_str());
        acks.push(
            js.publish_with_headers(queue.clone(), headers, id.to_string().into())
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
    let got = r.wait_for(HEALTHY, Duration::from_secs(15)).await;
    assert!(
        got.iter().all(|g| g.path == "/healthy"),
        "the broken webhook was sent something"
    );

    // The org's webhooks still list, the broken one saying what to do.
    let listed = gw.get(&t.key, "/api/v1/webhooks").await.expect(200);
    let hints: Vec<&str> = listed
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["secret_hint"].as_str().unwrap())
        .collect();
    assert_eq!(hints.len(), 2);
    assert!(
        hints.contains(&"unreadable: rotate the secret"),
        "{hints:?}"
    );
    // A new event still reaches the healthy webhook, and is stored for the broken one.
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    gw.clock_in(&t.key, "E-1").await.expect(200);
    let got = r.wait_for(HEALTHY + 1, Duration::from_secs(15)).await;
    assert_eq!(
        got.len(),
        HEALTHY + 1,
        "the event did not reach the healthy webhook"
    );
    // The new one's attempt at intake fails before sending; it is stored then, to wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (stored,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM webhook.deliveries WHERE subscription_id = $1 AND status = 'pending'",
        )
        .bind(subs[1])
        .fetch_one(&db)
        .await
        .unwrap();
        if stored == 2 {
            break;
        }
        assert!(
            stored < 2 && std::time::Instant::now() < deadline,
            "the broken webhook's deliveries wait, the new one among them: {stored} pending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Rotating the secret mends it: what waited goes out, signed with the new secret.
    gw.post(
        &t.key,
        &format!("/api/v1/webhooks/{}/rotate-secret", subs[1]),
        &json!({}),
    )
    .await
    .expect(200);
    let got = r.wait_for(HEALTHY + 3, Duration::from_secs(20)).await;
    assert_eq!(
        got.iter().filter(|g| g.path == "/broken").count(),
        2,
        "the broken webhook's deliveries after the rotation"
    );
}

#[tokio::test]
async fn a_410_switches_the_subscription_off_with_the_reason() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, id) = ann_and_receiver(&gw, &t, &["clock-in", "clock-out"]).await;
    r.answer([Answer::status(410)]);
    gw.clock_in(&t.key, "E-1").await.expect(200);
    r.wait_for(1, Duration::from_secs(10)).await;
    let sub = get_until(&gw, &t, &format!("/api/v1/webhooks/{id}"), |d| {
        d["active"] == false
    })
    .await;
    assert_eq!(sub["disabled_reason"], "The endpoint answered 410 Gone");
    gw.clock_out(&t.key, "E-1").await.expect(200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.received().len(), 1, "nothing more once it is off");
    // Switching it back on clears the reason.
    let res = gw
        .patch(
            &t.key,
            &format!("/api/v1/webhooks/{id}"),
            &json!({"active": true}),
        )
        .await
        .expect(200);
    assert_eq!(res.data()["disabled_reason"], Value::Null);
}

#[tokio::test]
async fn the_test_endpoint_sends_a_sample_and_imported_history_is_not_announced() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, id) = ann_and_receiver(&gw, &t, &["clock-in", "clock-out"]).await;
    gw.post(
        &t.key,
        "/api/v1/attendance/import",
        &json!({"records": [{"nip": "E-1", "clock_in": "2026-01-05T09:00:00Z", "clock_out": "2026-01-05T17:00:00Z"}]}),
    )
    .await
    .expect(201);
    let res = gw
        .post(&t.key, &format!("/api/v1/webhooks/{id}/test"), &json!({}))
        .await
        .expect(202);
    assert_eq!(res.data()["event_type"], "clock-in");
    let got = r.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json()["data"]["employee_name"], "Test Employee");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(r.received().len(), 1, "the import was not announced");

    // A sample the receiver refuses is settled as failed: it has no schedule to wait for.
    r.answer([Answer::status(500)]);
    let sample = gw
        .post(&t.key, &format!("/api/v1/webhooks/{id}/test"), &json!({}))
        .await
        .expect(202);
    let did = sample.data()["id"].as_str().unwrap();
    let detail = get_until(
        &gw,
        &t,
        &format!("/api/v1/webhooks/{id}/deliveries/{did}"),
        |d| d["status"] != "pending",
    )
    .await;
    assert_eq!(detail["status"], "failed", "{detail}");
    assert_eq!(detail["attempts"][0]["status_code"], 500);
    assert_eq!(detail["attempts"][0]["trigger"], "manual");
}

#[tokio::test]
async fn a_hostname_resolving_to_loopback_is_refused_when_not_allowed() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    let mut strict = stack.webhook_config();
    strict.allow_http = false;
    strict.allow_cidrs = Vec::new();
    stack.start_webhook_svc_with(strict).await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    for (url, message) in [
        (
            "https://localhost/hook",
            "The url must not point to a private, loopback, link-local or reserved address (",
        ),
        (
            "http://example.com/hook",
            "The url field must be an https URL",
        ),
        (
            "https://127.0.0.1/hook",
            "The url must not point to a private, loopback, link-local or reserved address (127.0.0.1)",
        ),
        (
            "https://[::1]/hook",
            "The url must not point to a private, loopback, link-local or reserved address (::1)",
        ),
    ] {
        let res = gw
            .post(
                &t.key,
                "/api/v1/webhooks",
                &json!({"url": url, "events": ["clock-in"]}),
            )
            .await
            .expect(422);
        assert!(
            res.message().starts_with(message),
            "{url}: {}",
            res.message()
        );
    }
}

#[tokio::test]
async fn a_webhook_svc_killed_mid_delivery_loses_nothing() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    stack.start_attendance_svc().await;
    let mut first = stack.isolated_webhook_svc();
    stack
        .wait_for_replicas(clokio_bus::ServiceName::Webhook, 1)
        .await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, _) = ann_and_receiver(&gw, &t, &["clock-in"]).await;
    // The receiver holds the first attempt while the replica dies.
    r.answer([Answer::status(200).after(Duration::from_secs(2))]);
    gw.clock_in(&t.key, "E-1").await.expect(200);
    r.wait_for(1, Duration::from_secs(10)).await;
    first.kill();
    stack.start_webhook_svc().await;
    // The unacknowledged delivery comes back after the ack wait (3 s in tests).
    let got = r.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
}

/// The guard runs again when sending, on the addresses the name resolves to then: a webhook
/// created while loopback was allowed is refused once it is not, without a connection.
/// Two webhook-svc replicas share the consumers: each delivery is sent once. A receiver that
/// answers slowly holds at most `per_subscription` attempts per replica, so another
/// subscription's deliveries keep arriving while it is busy.
#[tokio::test]
async fn replicas_share_the_work_and_a_slow_receiver_does_not_hold_up_others() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    stack.start_attendance_svc().await;
    let mut config = stack.webhook_config();
    config.per_subscription = 2;
    config.workers = 8;
    stack.start_webhook_svc_with(config.clone()).await;
    stack.start_webhook_svc_with(config).await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (slow, fast) = (Receiver::start().await, Receiver::start().await);
    let n = 10;
    slow.answer((0..n).map(|_| Answer::status(200).after(Duration::from_secs(3))));
    for r in [&slow, &fast] {
        gw.webhook(
            &t.key,
            json!({"url": format!("{}/hook", r.url), "events": ["clock-in"]}),
        )
        .await;
    }
    let nips: Vec<String> = (0..n).map(|i| format!("E-{i}")).collect();
    for nip in &nips {
        gw.create_employee(&t.key, nip, json!({"employee_code": nip}))
            .await;
    }
    for res in futures::future::join_all(nips.iter().map(|nip| gw.clock_in(&t.key, nip))).await {
        res.expect(200);
    }
    fast.wait_for(n, Duration::from_secs(10)).await;
    let busy = slow.received().len();
    assert!(
        busy <= 4,
        "{busy} attempts at the slow receiver at once: more than 2 per replica"
    );
    let ids = |got: Vec<clokio_tests::Received>| {
        let mut ids: Vec<String> = got
            .iter()
            .map(|g| g.header("webhook-id").to_owned())
            .collect();
        ids.sort();
        ids
    };
    let got = ids(slow.wait_for(n, Duration::from_secs(30)).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, got, all) in [
        ("slow", got, ids(slow.received())),
        ("fast", ids(fast.received()), ids(fast.received())),
    ] {
        let mut unique = got.clone();
        unique.dedup();
        assert_eq!(unique.len(), n, "{name}: {got:?}");
        assert_eq!(all.len(), n, "{name}: sent once each: {all:?}");
    }
}

/// A webhook change answered before a clock-in is seen by that clock-in's intake on any replica:
/// with two webhook-svc replicas, each round switches the last webhook off and makes a new one,
/// then clocks someone in. The new webhook gets the event and the switched-off one does not,
/// whichever replica answered the change and whichever took the event (the intake's cache drains
/// the change's announcement, which reached its connection before the event).
#[tokio::test]
async fn a_webhook_change_answered_before_a_clock_in_is_seen_by_every_replica() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    stack.start_attendance_svc().await;
    stack.start_webhook_svc().await;
    stack.start_webhook_svc().await;
    let gw = stack.start_gateway().await;
    stack
        .wait_for_replicas(clokio_bus::ServiceName::Webhook, 2)
        .await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let r = Receiver::start().await;
    let rounds = 8;
    let mut hooks: Vec<String> = Vec::new();
    for i in 0..rounds {
        let nip = format!("E-{i}");
        gw.create_employee(&t.key, &nip, json!({"employee_code": nip}))
            .await;
        if let Some(last) = hooks.last() {
            gw.patch(
                &t.key,
                &format!("/api/v1/webhooks/{last}"),
                &json!({"active": false}),
            )
            .await
            .expect(200);
        }
        let created = gw
            .webhook(
                &t.key,
                json!({"url": format!("{}/hook-{i}", r.url), "events": ["clock-in"]}),
            )
            .await;
        hooks.push(created["id"].as_str().unwrap().to_owned());
        gw.clock_in(&t.key, &nip).await.expect(200);
        let got = r.wait_for(i + 1, Duration::from_secs(10)).await;
        assert_eq!(
            got.len(),
            i + 1,
            "round {i}: {:?}",
            got.iter().map(|g| &g.path).collect::<Vec<_>>()
        );
        assert_eq!(got[i].path, format!("/hook-{i}"), "round {i}");
    }
    // Each webhook stored the one delivery of its own round, and nothing else.
    for (i, id) in hooks.iter().enumerate() {
        let page = gw
            .get(&t.key, &format!("/api/v1/webhooks/{id}/deliveries"))
            .await
            .expect(200);
        let deliveries = page.data()["deliveries"].as_array().unwrap().clone();
        assert_eq!(deliveries.len(), 1, "webhook {i}: {deliveries:?}");
    }
    assert_eq!(r.received().len(), rounds);
}

/// What went wrong is logged with each attempt: a refused connection (status 0), a timeout, and
/// a redirect, which is not followed and counts as a failure.
#[tokio::test]
async fn every_kind_of_failure_is_logged() {
    let (stack, gw) = with_webhook_config(|config| {
        config.timeout = Duration::from_millis(500);
    })
    .await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    let (slow, moved) = (Receiver::start().await, Receiver::start().await);
    slow.answer([Answer::status(200).after(Duration::from_secs(2))]);
    moved.answer([Answer::status(302).header("location", &format!("{}/elsewhere", moved.url))]);
    let mut hooks = Vec::new();
    for url in [
        format!("http://127.0.0.1:{}/closed", clokio_tests::free_port()),
        format!("{}/slow", slow.url),
        format!("{}/moved", moved.url),
    ] {
        let created = gw
            .webhook(&t.key, json!({"url": url, "events": ["clock-in"]}))
            .await;
        hooks.push(created["id"].as_str().unwrap().to_owned());
    }
    gw.clock_in(&t.key, "E-1").await.expect(200);
    let mut first = Vec::new();
    for id in &hooks {
        let page = get_until(&gw, &t, &format!("/api/v1/webhooks/{id}/deliveries"), |d| {
            d["deliveries"][0]["attempt_count"].as_i64() >= Some(1)
        })
        .await;
        let attempts = attempts(&gw, &t, id, &page["deliveries"][0]).await;
        first.push((
            attempts[0]["status_code"].as_i64().unwrap(),
            attempts[0]["error"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(
        first,
        [
            (0, "connection".to_owned()),
            (0, "timeout".to_owned()),
            (302, "http".to_owned())
        ]
    );
    assert!(
        moved.received().iter().all(|r| r.path == "/moved"),
        "the redirect was not followed"
    );
}

/// SIGTERM during a slow delivery: the replica stops taking work but finishes and records the
/// attempt under way before it exits, so no other replica sends it again.
#[tokio::test]
async fn a_webhook_svc_stopped_mid_delivery_finishes_it_first() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    stack.start_attendance_svc().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let replica = tokio::spawn(clokio_webhook_svc::run(
        stack.webhook_config(),
        async move {
            let _ = stopped.await;
        },
    ));
    stack
        .wait_for_replicas(clokio_bus::ServiceName::Webhook, 1)
        .await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, id) = ann_and_receiver(&gw, &t, &["clock-in"]).await;
    r.answer([Answer::status(200).after(Duration::from_secs(2))]);
    gw.clock_in(&t.key, "E-1").await.expect(200);
    r.wait_for(1, Duration::from_secs(10)).await;
    let _ = stop.send(());
    replica.await.unwrap().unwrap();
    let (status, attempts): (String, i32) = sqlx::query_as(
        "SELECT status, attempt_count FROM webhook.deliveries WHERE subscription_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&clokio_tests::db().await)
    .await
    .unwrap();
    assert_eq!((status.as_str(), attempts), ("succeeded", 1));
    // A replacement finds nothing left to send, even after the ack wait (3 s in tests).
    stack.start_webhook_svc().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(r.received().len(), 1);
}

#[tokio::test]
async fn the_address_connected_to_is_checked_when_sending() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    stack.start_attendance_svc().await;
    let mut permissive = stack.isolated_webhook_svc();
    stack
        .wait_for_replicas(clokio_bus::ServiceName::Webhook, 1)
        .await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let r = Receiver::start().await;
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    let port = r.url.rsplit(':').next().unwrap().to_owned();
    let created = gw
        .webhook(
            &t.key,
            json!({"url": format!("http://localhost:{port}/hook"), "events": ["clock-in"]}),
        )
        .await;
    permissive.kill();
    let mut strict = stack.webhook_config();
    strict.allow_cidrs = Vec::new();
    stack.start_webhook_svc_with(strict).await;
    gw.clock_in(&t.key, "E-1").await.expect(200);
    let id = created["id"].as_str().unwrap();
    let page = get_until(&gw, &t, &format!("/api/v1/webhooks/{id}/deliveries"), |d| {
        d["deliveries"][0]["attempt_count"].as_i64() > Some(0)
    })
    .await;
    let attempt = attempts(&gw, &t, id, &page["deliveries"][0]).await[0].clone();
    assert_eq!(attempt["status_code"], 0);
    assert_eq!(attempt["error"], "blocked");
    assert!(r.received().is_empty(), "no request reached the receiver");
}

/// Successes of a healthy subscription are written in batches; each still gets its own attempt
/// row and its delivery its own state, and none is lost or counted twice.
#[tokio::test]
async fn first_try_successes_are_each_logged() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let r = Receiver::start().await;
    let created = gw
        .webhook(
            &t.key,
            json!({"url": format!("{}/hook", r.url), "events": ["clock-in"]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let nips: Vec<String> = (0..20).map(|i| format!("E-{i}")).collect();
    for nip in &nips {
        gw.create_employee(&t.key, nip, json!({"employee_code": nip}))
            .await;
    }
    // One receiver answers with a NUL byte, which a Postgres text column cannot hold: it is
    // logged replaced, and the batch it is recorded with still commits.
    r.answer([Answer::status(200).body("o\0k")]);
    for res in futures::future::join_all(nips.iter().map(|nip| gw.clock_in(&t.key, nip))).await {
        res.expect(200);
    }
    r.wait_for(20, Duration::from_secs(15)).await;
    let page = get_until(
        &gw,
        &t,
        &format!("/api/v1/webhooks/{id}/deliveries?per_page=100"),
        |d| {
            d["deliveries"]
                .as_array()
                .is_some_and(|a| a.len() == 20 && a.iter().all(|d| d["status"] == "succeeded"))
        },
    )
    .await;
    let mut bodies = Vec::new();
    for delivery in page["deliveries"].as_array().unwrap() {
        assert_eq!(delivery["attempt_count"], 1, "{delivery}");
        let attempts = attempts(&gw, &t, id, delivery).await;
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(attempts[0]["status_code"], 200);
        assert_eq!(attempts[0]["trigger"], "scheduled");
        assert_eq!(attempts[0]["error"], Value::Null);
        assert!(attempts[0]["latency_ms"].is_u64());
        bodies.push(attempts[0]["response_body"].as_str().unwrap().to_owned());
    }
    bodies.sort();
    let mut want = vec!["ok".to_owned(); 19];
    want.push("o\u{FFFD}k".to_owned());
    assert_eq!(bodies, want);
    assert_eq!(r.received().len(), 20, "no delivery was sent twice");
}

/// An event published again after the work queue's duplicate window (a relay whose ack was lost
/// in a long outage) finds its delivery stored and already attempted: it is not queued a second
/// time, so the delivery keeps one schedule.
#[tokio::test]
async fn an_event_published_again_late_does_not_give_its_delivery_a_second_schedule() {
    let (stack, gw) = with_webhook_config(|config| {
        config.schedule = clokio_webhook_svc::parse_schedule("0s,10m").unwrap();
    })
    .await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, _) = ann_and_receiver(&gw, &t, &["clock-in"]).await;
    r.answer([Answer::status(500)]);
    // The queue forgets published ids after 1 s instead of 120 s, so "late" comes soon.
    let js = async_nats::jetstream::new(stack.nats.clone());
    let (queue, _) = stack.bus_config.subjects.webhook_queue();
    let mut info = js
        .get_stream(&queue)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    info.duplicate_window = Duration::from_secs(1);
    js.update_stream(info).await.unwrap();

    let mut events = stack
        .events(stack.bus_config.subjects.event("attendance", t.org.id, ">"))
        .await;
    gw.clock_in(&t.key, "E-1").await.expect(200);
    let event = events.next().await;
    r.wait_for(1, Duration::from_secs(10)).await;
    // The failed attempt waits for its retry (in 10 min) as the one message of the queue.
    wait_queued(&stack, 1).await;
    // Past the duplicate window, the same event is published again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "Nats-Msg-Id",
        format!("{}-again", event.body["id"].as_str().unwrap()).as_str(),
    );
    let again = js
        .publish_with_headers(
            event.subject.clone(),
            headers,
            serde_json::to_vec(&event.body).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    // Once the intake has taken it, the queue still holds one message and nothing was sent.
    let events_stream = js
        .get_stream(stack.bus_config.subjects.events_stream())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut intake = events_stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>("webhook-intake")
            .await
            .unwrap();
        let i = intake.info().await.unwrap();
        if i.delivered.stream_sequence >= again.sequence && i.num_ack_pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the intake did not take the event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        queued(&stack).await,
        1,
        "the delivery was queued a second time"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        r.received().len(),
        1,
        "a second schedule attempted it again"
    );
}

/// A receiver that answers 200 and then trickles its body forever, and one that answers with a
/// 10 MB body: neither holds an attempt past the timeout or fills memory. Each attempt ends
/// within the timeout as the success its status says, with at most 4 KiB of the body logged.
#[tokio::test]
async fn a_receiver_that_trickles_or_floods_its_answer_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (stack, gw) = with_webhook_config(|config| {
        config.timeout = Duration::from_millis(1000);
    })
    .await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    // Raw HTTP: each connection reads the request's head, then answers as `kind` says.
    let serve = |kind: &'static str| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/{kind}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let _ = conn.read(&mut buf).await;
                    if kind == "trickle" {
                        let _ = conn
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
                            .await;
                        while conn.write_all(b"x").await.is_ok() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    } else {
                        let _ = conn
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10485760\r\n\r\n")
                            .await;
                        let mb = vec![b'y'; 1 << 20];
                        for _ in 0..10 {
                            if conn.write_all(&mb).await.is_err() {
                                break;
                            }
                        }
                    }
                });
            }
        });
        url
    };
    let mut hooks = Vec::new();
    for kind in ["trickle", "flood"] {
        let url = serve(kind).await;
        let created = gw
            .webhook(&t.key, json!({"url": url, "events": ["clock-in"]}))
            .await;
        hooks.push(created["id"].as_str().unwrap().to_owned());
    }
    gw.clock_in(&t.key, "E-1").await.expect(200);
    for (id, body) in hooks.iter().zip(['x', 'y']) {
        let page = get_until(&gw, &t, &format!("/api/v1/webhooks/{id}/deliveries"), |d| {
            d["deliveries"][0]["status"] == "succeeded"
        })
        .await;
        let attempts = attempts(&gw, &t, id, &page["deliveries"][0]).await;
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(attempts[0]["status_code"], 200);
        let logged = attempts[0]["response_body"].as_str().unwrap();
        // The trickle was cut by the timeout (a byte every 50 ms: far from the 4 KiB kept), the
        // flood at the 4 KiB kept.
        if body == 'x' {
            assert!(
                !logged.is_empty() && logged.len() < 4096,
                "{} bytes logged",
                logged.len()
            );
        } else {
            assert_eq!(logged.len(), 4096);
        }
        assert!(logged.chars().all(|c| c == body), "{logged}");
    }
}

#[tokio::test]
async fn a_subscription_failing_for_five_days_is_switched_off() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, id) = ann_and_receiver(&gw, &t, &["clock-in"]).await;
    // Its receiver has failed every delivery for six days.
    sqlx::query(
        "UPDATE webhook.subscriptions SET failing_since = now() - interval '6 days' WHERE id = $1",
    )
    .bind(id.parse::<uuid::Uuid>().unwrap())
    .execute(&clokio_tests::db().await)
    .await
    .unwrap();
    r.answer([Answer::status(500)]);
    gw.clock_in(&t.key, "E-1").await.expect(200);
    r.wait_for(1, Duration::from_secs(10)).await;
    let sub = get_until(&gw, &t, &format!("/api/v1/webhooks/{id}"), |d| {
        d["active"] == false
    })
    .await;
    assert!(
        sub["disabled_reason"]
            .as_str()
            .unwrap()
            .starts_with("Every delivery failed since "),
        "{sub}"
    );
}

/// A webhook deleted while its delivery is being sent takes the delivery with it; the success
/// of that attempt, recorded in one batch with the others', is dropped, not the whole batch. (It
/// used to break the batch's foreign key: every other success in it was retried and sent twice.)
#[tokio::test]
async fn a_webhook_deleted_mid_delivery_does_not_fail_the_others_recorded_with_it() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let r = Receiver::start().await;
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    let hooks = 8;
    let mut ids = Vec::new();
    for i in 0..hooks {
        let created = gw
            .webhook(
                &t.key,
                json!({"url": format!("{}/hook-{i}", r.url), "events": ["clock-in"]}),
            )
            .await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    // Every receiver holds its answer, so the successes come back together.
    r.answer((0..hooks).map(|_| Answer::status(200).after(Duration::from_millis(1500))));
    gw.clock_in(&t.key, "E-1").await.expect(200);
    r.wait_for(hooks, Duration::from_secs(10)).await;
    gw.delete(&t.key, &format!("/api/v1/webhooks/{}", ids[0]))
        .await
        .expect(200);
    for id in &ids[1..] {
        let page = get_until(&gw, &t, &format!("/api/v1/webhooks/{id}/deliveries"), |d| {
            d["deliveries"][0]["status"] == "succeeded"
        })
        .await;
        assert_eq!(page["deliveries"][0]["attempt_count"], 1, "{page}");
    }
    let paths: Vec<String> = r.received().iter().map(|g| g.path.clone()).collect();
    assert_eq!(
        paths.len(),
        hooks,
        "each webhook was sent to once: {paths:?}"
    );
}

/// Since when the webhook `id` has been failing, as stored.
async fn failing_since(id: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let (since,): (Option<chrono::DateTime<chrono::Utc>>,) =
        sqlx::query_as("SELECT failing_since FROM webhook.subscriptions WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&clokio_tests::db().await)
            .await
            .unwrap();
    since
}

/// A success ends a failing streak: after a failed attempt marks the subscription failing, the
/// next event's successful first attempt clears the mark (else the next failure, days later,
/// would count from the first and switch a healthy receiver off).
#[tokio::test]
async fn a_success_ends_a_failing_streak() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, id) = ann_and_receiver(&gw, &t, &["clock-in", "clock-out"]).await;
    let failing_since = || failing_since(&id);
    r.answer([Answer::status(500)]);
    gw.clock_in(&t.key, "E-1").await.expect(200);
    r.wait_for(1, Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while failing_since().await.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no failing streak recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.clock_out(&t.key, "E-1").await.expect(200);
    let page = get_until(&gw, &t, &format!("/api/v1/webhooks/{id}/deliveries"), |d| {
        d["deliveries"][0]["event_type"] == "clock-out"
            && d["deliveries"][0]["status"] == "succeeded"
    })
    .await;
    assert_eq!(page["deliveries"][0]["attempt_count"], 1, "{page}");
    assert_eq!(failing_since().await, None, "the success ended the streak");
}

/// A delivery whose work-queue message is lost (purged here; in production a consumer stuck after
/// a NATS leader change) is queued again by the overdue sweep and attempted on its schedule; a
/// copy from before the sweep that turns up later is dropped, so the delivery never gets two
/// schedules.
#[tokio::test]
async fn a_delivery_whose_queue_message_is_lost_is_queued_again_once() {
    // The sweep takes every late delivery of its database: this stack has one of its own.
    let mut stack = Stack::empty().await;
    stack.own_database().await;
    stack.start_employee_svc().await;
    stack.start_attendance_svc().await;
    let mut config = stack.webhook_config();
    config.schedule = clokio_webhook_svc::parse_schedule("0s,1s,10m").unwrap();
    config.requeue_after = Duration::from_secs(2);
    stack.start_webhook_svc_with(config).await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, id) = ann_and_receiver(&gw, &t, &["clock-in"]).await;
    r.answer([Answer::status(500), Answer::status(500)]);
    gw.clock_in(&t.key, "E-1").await.expect(200);
    r.wait_for(1, Duration::from_secs(10)).await;
    // The retry, due in 1 s, waits as the queue's one message: it is lost.
    wait_queued(&stack, 1).await;
    let js = async_nats::jetstream::new(stack.nats.clone());
    let (queue, subject) = stack.bus_config.subjects.webhook_queue();
    js.get_stream(&queue).await.unwrap().purge().await.unwrap();
    wait_queued(&stack, 0).await;

    // Overdue by 2 s, the delivery is queued again and attempted (and fails again: its next
    // attempt is in 10 min).
    r.wait_for(2, Duration::from_secs(15)).await;
    let page = get_until(&gw, &t, &format!("/api/v1/webhooks/{id}/deliveries"), |d| {
        d["deliveries"][0]["attempt_count"] == 2
    })
    .await;
    let delivery = page["deliveries"][0]["id"].as_str().unwrap().to_owned();
    wait_queued(&stack, 1).await;

    // The lost message turns up after all (a stuck consumer hands it out at last): dropped.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("{delivery}-late").as_str());
    js.publish_with_headers(subject, headers, delivery.clone().into())
        .await
        .unwrap()
        .await
        .unwrap();
    wait_queued(&stack, 1).await;
    let db = stack.db().await;
    let (status, attempts, scheduled, requeues): (String, i32, i32, i32) = sqlx::query_as(
        "SELECT status, attempt_count, scheduled_attempts, requeues FROM webhook.deliveries \
         WHERE id = $1::uuid",
    )
    .bind(&delivery)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), attempts, scheduled, requeues),
        ("pending", 2, 2, 1)
    );
    assert_eq!(r.received().len(), 2, "the late copy was attempted");
}

/// A delivery's message handed out again while the first copy waited in the replica's hands (its
/// ack wait ran out behind slower attempts) does not make an attempt ahead of the schedule: after
/// the first copy failed, the second waits until the delivery is due.
#[tokio::test]
async fn a_copy_handed_out_again_waits_for_the_schedule() {
    let (stack, gw) = with_webhook_config(|config| {
        config.workers = 1;
        config.timeout = Duration::from_secs(1);
        config.ack_wait = Duration::from_millis(1500);
        config.schedule = clokio_webhook_svc::parse_schedule("0s,10m").unwrap();
    })
    .await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let r = Receiver::start().await;
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    for i in 0..3 {
        gw.webhook(
            &t.key,
            json!({"url": format!("{}/hook/{i}", r.url), "events": ["clock-in"]}),
        )
        .await;
    }
    // One worker: two slow successes (0.9 s each) before the third delivery, which fails.
    let slow = || Answer::status(200).after(Duration::from_millis(900));
    r.answer([slow(), slow(), Answer::status(500), Answer::status(500)]);
    gw.clock_in(&t.key, "E-1").await.expect(200);
    r.wait_for(3, Duration::from_secs(15)).await;
    // Its retry, due in 10 min, is the one message the queue holds.
    wait_queued(&stack, 1).await;
    let db = stack.db().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let failed: Option<(i32, i32)> = sqlx::query_as(
            "SELECT attempt_count, scheduled_attempts FROM webhook.deliveries \
             WHERE org_id = $1 AND status = 'pending' AND attempt_count > 0",
        )
        .bind(t.org.id.as_uuid())
        .fetch_optional(&db)
        .await
        .unwrap();
        if failed.is_some() || std::time::Instant::now() > deadline {
            break failed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(failed, Some((1, 1)), "the failed delivery's attempts");
    assert_eq!(
        r.received().len(),
        3,
        "an attempt came ahead of the schedule"
    );
}

/// The sealing of secrets stored in plain text (at the upgrade that brought sealing) does not undo
/// a rotation made between its read and its write, by a replica already serving.
#[tokio::test]
async fn sealing_old_secrets_does_not_undo_a_rotation_made_meanwhile() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (_r, id) = ann_and_receiver(&gw, &t, &["clock-in"]).await;
    let db = clokio_runtime::db::connect(&stack.database_url, "webhook", 2, Duration::from_secs(5))
        .await
        .unwrap();
    // The secret as an older version stored it: in plain text.
    sqlx::query(
        "UPDATE subscriptions SET secret = 'whsec_storedbeforesealing' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&db)
    .await
    .unwrap();
    let read = clokio_webhook_svc::seal::unsealed(&db).await.unwrap();
    let rotated = gw
        .post(
            &t.key,
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            &json!({}),
        )
        .await
        .expect(200);
    let secret = rotated.data()["secret"].as_str().unwrap().to_owned();
    clokio_webhook_svc::seal::seal_rows(&db, read)
        .await
        .unwrap();
    let hint = gw
        .get(&t.key, &format!("/api/v1/webhooks/{id}"))
        .await
        .expect(200)
        .data()["secret_hint"]
        .clone();
    assert_eq!(
        hint,
        format!("whsec_…{}", &secret[secret.len() - 4..]),
        "the rotation was undone"
    );
}

/// The queue's stream: how many messages were ever published to it.
async fn ever_queued(stack: &Stack) -> u64 {
    let js = async_nats::jetstream::new(stack.nats.clone());
    let mut stream = js
        .get_stream(stack.bus_config.subjects.webhook_queue().0)
        .await
        .unwrap();
    stream.info().await.unwrap().state.last_sequence
}

/// A delivery's first attempt is made where its event is taken, without a trip through the work
/// queue; only a retry goes there, to wait until it is due.
#[tokio::test]
async fn first_attempts_are_made_at_intake_and_only_retries_are_queued() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, id) = ann_and_receiver(&gw, &t, &["clock-in", "clock-out"]).await;
    gw.clock_in(&t.key, "E-1").await.expect(200);
    r.wait_for(1, Duration::from_secs(10)).await;
    let page = get_until(&gw, &t, &format!("/api/v1/webhooks/{id}/deliveries"), |d| {
        d["deliveries"][0]["status"] == "succeeded"
    })
    .await;
    assert_eq!(page["deliveries"][0]["attempt_count"], 1);
    assert_eq!(
        ever_queued(&stack).await,
        0,
        "nothing went through the queue"
    );

    // A first attempt that fails: its retry is the queue's one message, attempted when due.
    r.answer([Answer::status(500)]);
    gw.clock_out(&t.key, "E-1").await.expect(200);
    let got = r.wait_for(3, Duration::from_secs(10)).await;
    assert!(
        got[2].at - got[1].at >= Duration::from_millis(750),
        "the retry waited for its turn (1 s ± 20 %)"
    );
    let page = get_until(&gw, &t, &format!("/api/v1/webhooks/{id}/deliveries"), |d| {
        d["deliveries"][0]["event_type"] == "clock-out"
            && d["deliveries"][0]["status"] == "succeeded"
    })
    .await;
    let codes: Vec<i64> = attempts(&gw, &t, &id, &page["deliveries"][0])
        .await
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 200]);
    assert_eq!(ever_queued(&stack).await, 1, "only the retry was queued");
    assert_eq!(r.received().len(), 3);
}

/// A first attempt made at intake is stored with its record, in one insert: while its request is
/// under way the delivery has no row, and afterwards one, succeeded, under the id its request
/// carried as `webhook-id`.
#[tokio::test]
async fn a_first_attempt_at_intake_is_stored_with_its_record() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, id) = ann_and_receiver(&gw, &t, &["clock-in"]).await;
    r.answer([Answer::status(200).after(Duration::from_secs(2))]);
    gw.clock_in(&t.key, "E-1").await.expect(200);
    let got = r.wait_for(1, Duration::from_secs(10)).await;
    let db = stack.db().await;
    let sub = id.parse::<uuid::Uuid>().unwrap();
    let stored = || {
        sqlx::query_as::<_, (uuid::Uuid, String, i32, i32, i64)>(
            "SELECT d.id, d.status, d.attempt_count, d.scheduled_attempts, \
                (SELECT count(*) FROM webhook.attempts a WHERE a.delivery_id = d.id) \
             FROM webhook.deliveries d WHERE d.subscription_id = $1",
        )
        .bind(sub)
        .fetch_all(&db)
    };
    assert_eq!(
        stored().await.unwrap(),
        [],
        "stored before its attempt was answered"
    );
    let page = get_until(&gw, &t, &format!("/api/v1/webhooks/{id}/deliveries"), |d| {
        d["deliveries"][0]["status"] == "succeeded"
    })
    .await;
    let webhook_id = got[0].header("webhook-id");
    assert_eq!(page["deliveries"][0]["id"], webhook_id);
    let rows = stored().await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (delivery, status, attempt_count, scheduled, attempts) = &rows[0];
    assert_eq!(delivery.to_string(), webhook_id);
    assert_eq!(
        (status.as_str(), *attempt_count, *scheduled, *attempts),
        ("succeeded", 1, 1, 1)
    );
    assert_eq!(ever_queued(&stack).await, 0);
}

/// An event that is not recent may have been delivered before: published again after the
/// stream's duplicate window (or taken again by a consumer created anew), its deliveries are
/// looked up before anything is sent, and one made already is not sent again.
#[tokio::test]
async fn an_old_event_published_again_is_not_delivered_again() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, id) = ann_and_receiver(&gw, &t, &["clock-in"]).await;
    let subject = stack
        .bus_config
        .subjects
        .event("attendance", t.org.id, "clock-in");
    let mut events = stack.events(subject.clone()).await;
    // A punch from an offline kiosk: its event is five minutes old.
    gw.post(
        &t.key,
        "/api/v1/attendance/clock-in",
        &json!({"nip": "E-1", "timestamp": ts(now() - Span::minutes(5))}),
    )
    .await
    .expect(200);
    let event = events.next().await;
    r.wait_for(1, Duration::from_secs(10)).await;
    get_until(&gw, &t, &format!("/api/v1/webhooks/{id}/deliveries"), |d| {
        d["deliveries"][0]["status"] == "succeeded"
    })
    .await;
    // The same event again, under another de-duplication id.
    let js = async_nats::jetstream::new(stack.nats.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", uuid::Uuid::new_v4().to_string().as_str());
    let again = js
        .publish_with_headers(subject, headers, event.body.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    // Once the intake acknowledged it, nothing more was sent.
    let mut intake = js
        .get_stream(stack.bus_config.subjects.events_stream())
        .await
        .unwrap()
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("webhook-intake")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while intake.info().await.unwrap().ack_floor.stream_sequence < again {
        assert!(
            std::time::Instant::now() < deadline,
            "the intake did not take it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(r.received().len(), 1, "delivered again");
    let page = gw
        .get(&t.key, &format!("/api/v1/webhooks/{id}/deliveries"))
        .await
        .expect(200);
    assert_eq!(page.data()["deliveries"][0]["attempt_count"], 1);
}

/// In a burst, a first attempt waits for a slot of its subscription's cap rather than going
/// through the work queue: with a cap of one, three events at once are attempted one after the
/// other at intake.
#[tokio::test]
async fn a_first_attempt_waits_at_intake_for_its_subscriptions_slot() {
    let (stack, gw) = with_webhook_config(|c| c.per_subscription = 1).await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, _) = ann_and_receiver(&gw, &t, &["clock-in"]).await;
    r.answer((0..3).map(|_| Answer::status(200).after(Duration::from_millis(100))));
    let nips = ["E-1", "E-2", "E-3"];
    for nip in &nips[1..] {
        gw.create_employee(&t.key, nip, json!({"employee_code": nip}))
            .await;
    }
    for res in futures::future::join_all(nips.map(|nip| gw.clock_in(&t.key, nip))).await {
        res.expect(200);
    }
    let got = r.wait_for(3, Duration::from_secs(10)).await;
    assert!(
        got[2].at - got[0].at >= Duration::from_millis(200),
        "one at a time"
    );
    assert_eq!(ever_queued(&stack).await, 0, "none went through the queue");
}

/// A receiver that kept an attempt waiting for more than a second counts as slow for a while: the
/// intake queues its deliveries rather than wait for its slots, where it would hold up other
/// orgs' events.
#[tokio::test]
async fn a_slow_receivers_first_attempts_go_through_the_queue() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, id) = ann_and_receiver(&gw, &t, &["clock-in", "clock-out"]).await;
    r.answer([Answer::status(200).after(Duration::from_millis(1500))]);
    gw.clock_in(&t.key, "E-1").await.expect(200);
    get_until(&gw, &t, &format!("/api/v1/webhooks/{id}/deliveries"), |d| {
        d["deliveries"][0]["status"] == "succeeded"
    })
    .await;
    assert_eq!(ever_queued(&stack).await, 0, "attempted at intake");
    gw.clock_out(&t.key, "E-1").await.expect(200);
    r.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        ever_queued(&stack).await,
        1,
        "queued: its receiver was slow"
    );
}

/// A first attempt at intake is sent as the replica's cache knows the subscription. When the
/// cache has not yet heard that the subscription began failing (another replica's attempt failed
/// a moment ago), its success still ends the failing streak.
#[tokio::test]
async fn a_success_at_intake_ends_a_streak_the_cache_had_not_heard_of() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let (r, id) = ann_and_receiver(&gw, &t, &["clock-in", "clock-out"]).await;
    gw.clock_in(&t.key, "E-1").await.expect(200);
    r.wait_for(1, Duration::from_secs(10)).await;
    let db = stack.db().await;
    let sub = id.parse::<uuid::Uuid>().unwrap();
    // The streak, recorded behind the cache's back.
    sqlx::query(
        "UPDATE webhook.subscriptions SET failing_since = now() - interval '1 day' WHERE id = $1",
    )
    .bind(sub)
    .execute(&db)
    .await
    .unwrap();
    gw.clock_out(&t.key, "E-1").await.expect(200);
    r.wait_for(2, Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while failing_since(&id).await.is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the success did not end the streak"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ever_queued(&stack).await,
        0,
        "both were attempted at intake"
    );
}

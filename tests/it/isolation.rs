use clokio_bus::types::Plan;
use clokio_tests::{Stack, json};

/// Org B's key with org A's identifiers: nothing of A is visible or changeable.
#[tokio::test]
async fn one_org_can_neither_see_nor_change_another() {
    let (stack, gw) = Stack::start().await;
    let a = stack.tenant(&gw, Plan::Pro).await;
    let b = stack.tenant(&gw, Plan::Pro).await;
    gw.post(
        &a.key,
        "/api/v1/locations",
        &json!({"name": "A Only HQ", "latitude": 1, "longitude": 1, "radius_meters": 50}),
    )
    .await
    .expect(201);
    let emp = gw
        .create_employee(&a.key, "Alice", json!({"employee_code": "A-1"}))
        .await;
    let a_keys = gw.get(&a.key, "/api/v1/api-keys").await.expect(200);
    let a_key_id = a_keys.data()[0]["id"].as_str().unwrap().to_owned();

    // Reads.
    let res = gw.get(&b.key, "/api/v1/employees").await.expect(200);
    assert_eq!(res.data(), &json!([]));
    let res = gw.get(&b.key, "/api/v1/locations").await.expect(200);
    assert_eq!(
        res.data().as_array().unwrap().len(),
        1,
        "B sees only its own Main Office"
    );
    let res = gw.get(&b.key, "/api/v1/api-keys").await.expect(200);
    assert_ne!(res.data()[0]["id"], a_key_id.as_str());
    let res = gw.get(&b.key, "/api/v1/organization").await.expect(200);
    assert_eq!(res.data()["id"], b.org.id.to_string());

    // Writes aimed at A's identifiers.
    gw.patch(
        &b.key,
        "/api/v1/employees/A-1/status",
        &json!({"status": "inactive"}),
    )
    .await
    .expect_error(404, "Employee not found");
    gw.delete(&b.key, &format!("/api/v1/api-keys/{a_key_id}"))
        .await
        .expect_error(404, "API key not found");
    gw.post(
        &b.key,
        "/api/v1/employees",
        &json!({"name": "Mallory", "email": "m@b.com", "location": "A Only HQ"}),
    )
    .await
    .expect_error(422, "The selected location is invalid");
    // The same code and email are free in B: uniqueness is per org.
    let same = gw
        .create_employee(
            &b.key,
            "Bob",
            json!({"employee_code": "A-1", "email": emp["email"].clone()}),
        )
        .await;
    assert_eq!(same["employee_code"], "A-1");

    // A is unchanged.
    let res = gw.get(&a.key, "/api/v1/employees").await.expect(200);
    assert_eq!(res.data().as_array().unwrap().len(), 1);
    assert_eq!(res.data()[0]["status"], "active");
    assert_eq!(res.data()[0]["name"], "Alice");
    gw.get(&a.key, "/api/v1/organization").await.expect(200);
}

/// Every operation of the served OpenAPI document, called with org B's key and org A's
/// identifiers (in the path, the query and the body): nothing of A comes back, whatever A owns
/// in the path is 404, and A's data reads the same before and after. An operation the sweep does
/// not know fails the test, so a new endpoint cannot skip it.
#[tokio::test]
async fn every_endpoint_with_another_orgs_identifiers_finds_nothing() {
    use std::time::Duration;

    let (stack, gw) = Stack::start().await;
    let a = stack.tenant(&gw, Plan::Enterprise).await;
    let b = stack.tenant(&gw, Plan::Enterprise).await;
    let receiver = clokio_tests::Receiver::start().await;
    gw.post(
        &a.key,
        "/api/v1/locations",
        &json!({"name": "Aardvark Works", "latitude": 1, "longitude": 1, "radius_meters": 50}),
    )
    .await
    .expect(201);
    gw.create_employee(
        &a.key,
        "Alice Aardvark",
        json!({"employee_code": "A-1", "location": "Aardvark Works"}),
    )
    .await;
    // The webhook first, so A's clock-in below has a delivery to find.
    let hook = gw
        .post(
            &a.key,
            "/api/v1/webhooks",
            &json!({"url": format!("{}/aardvark", receiver.url), "events": ["clock-in"]}),
        )
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = gw.clock_in(&a.key, "A-1").await.expect(200).data()["attendance_id"].to_string();
    let leave = gw
        .post(
            &a.key,
            "/api/v1/leaves",
            &json!({"nip": "A-1", "start_date": "2026-03-02", "end_date": "2026-03-03", "type": "annual"}),
        )
        .await
        .expect(201)
        .data()["id"]
        .clone();
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let mut delivery = serde_json::Value::Null;
    for _ in 0..100 {
        let page = gw
            .get(&a.key, &format!("/api/v1/webhooks/{hook}/deliveries"))
            .await
            .expect(200);
        delivery = page.data()["deliveries"][0]["id"].clone();
        if !delivery.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivery = delivery.as_str().expect("A has a delivery").to_owned();
    let key_id = gw.get(&a.key, "/api/v1/api-keys").await.expect(200).data()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let today = chrono::Utc::now().date_naive();
    let leave = leave.to_string().trim_matches('"').to_owned();

    // What A's data reads as; compared after the sweep.
    let reads = [
        "/api/v1/employees".to_owned(),
        "/api/v1/locations".to_owned(),
        "/api/v1/organization".to_owned(),
        "/api/v1/leaves?month=3&year=2026".to_owned(),
        "/api/v1/webhooks".to_owned(),
        format!("/api/v1/webhooks/{hook}/deliveries/{delivery}"),
        format!("/api/v1/attendance/daily?date={today}"),
        format!("/api/v1/attendance/sessions/{session}/history"),
        "/api/v1/periods".to_owned(),
    ];
    let mut before = Vec::new();
    for path in &reads {
        before.push(gw.get(&a.key, path).await.expect(200).text);
    }
    let secrets = [
        a.org.id.to_string(),
        "Alice Aardvark".to_owned(),
        "Aardvark Works".to_owned(),
        "/aardvark".to_owned(),
        hook.clone(),
        delivery.clone(),
        key_id.clone(),
        // (The leave's id is a small integer: it is checked through its path, not as text.)
    ];

    let doc = gw.get(&b.key, "/api/v1/openapi.json").await.body;
    let mut swept = 0;
    for (template, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if template == "/api/v1/events/stream" {
                // B resuming from the very start of the events stream gets none of A's events
                // (A's clock-in above is stored there).
                let mut stream = gw
                    .event_stream(&b.key, "", Some("0"))
                    .await
                    .unwrap_or_else(|res| panic!("B's stream refused: {}", res.text));
                stream
                    .expect_no_event(std::time::Duration::from_millis(500))
                    .await;
                swept += 1;
                continue;
            }
            // A month is B's own: closing and reopening it touches B only.
            let owned_in_path = template.contains('{') && !template.contains("{period}");
            let path = template
                .replace("{period}", "2026-03")
                .replace("{employee_code}", "A-1")
                .replace("{nip}", "A-1")
                .replace("{delivery_id}", &delivery)
                .replace(
                    "{id}",
                    if template.starts_with("/api/v1/api-keys") {
                        &key_id
                    } else if template.starts_with("/api/v1/leaves") {
                        &leave
                    } else if template.starts_with("/api/v1/attendance/sessions") {
                        &session
                    } else {
                        &hook
                    },
                );
            let query = match template.as_str() {
                "/api/v1/attendance/daily" => format!("?date={today}"),
                "/api/v1/attendance/range" => format!("?start={today}&end={today}"),
                "/api/v1/attendance/summary" => "?month=3&year=2026".to_owned(),
                "/api/v1/leaves" if method == "get" => "?month=3&year=2026".to_owned(),
                _ => String::new(),
            };
            let body = match (method.as_str(), template.as_str()) {
                ("post", "/api/v1/attendance/import") => json!({"records": [
                    {"nip": "A-1", "clock_in": "2026-03-04T08:00:00Z", "clock_out": "2026-03-04T16:00:00Z"}
                ]}),
                ("post", "/api/v1/leaves") => json!({
                    "nip": "A-1", "start_date": "2026-03-05", "end_date": "2026-03-05", "type": "annual"
                }),
                ("post", "/api/v1/employees") => json!({
                    "name": "Mallory", "email": "mallory@b.example", "location": "Aardvark Works"
                }),
                ("post", "/api/v1/webhooks") | ("patch", _) if template.contains("webhooks") => {
                    json!({"url": format!("{}/mallory", receiver.url), "events": ["clock-in"]})
                }
                ("patch", "/api/v1/organization") => json!({"name": "B Renamed"}),
                ("patch", "/api/v1/attendance/sessions/{id}") => {
                    json!({"clock_out": chrono::Utc::now(), "reason": "Mallory was here"})
                }
                ("delete", _) => json!({"reason": "Mallory was here"}),
                ("patch", _) => json!({"status": "inactive"}),
                ("post", "/api/v1/api-keys") | ("post", "/api/v1/locations") => {
                    json!({"name": "B's own"})
                }
                _ => json!({"nip": "A-1"}),
            };
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut req = gw.request(m, Some(&b.key), &format!("{path}{query}"));
            if method != "get" && (method != "delete" || template.contains("/sessions/")) {
                req = req.json(&body);
            }
            let res = gw.send(req).await;
            assert!(
                res.status < 500,
                "{method} {path}: {} {}",
                res.status,
                res.text
            );
            for secret in &secrets {
                assert!(
                    !res.text.contains(secret.as_str()),
                    "{method} {path}{query} showed org A's {secret}: {}",
                    res.text
                );
            }
            if owned_in_path {
                assert_eq!(res.status, 404, "{method} {path}: {}", res.text);
            } else if method == "get" {
                assert_eq!(res.status, 200, "{method} {path}{query}: {}", res.text);
            } else {
                // Writes naming A's employee or location are refused as unknown to B.
                let known = [
                    "/api/v1/api-keys",
                    "/api/v1/locations",
                    "/api/v1/organization",
                    "/api/v1/periods/{period}/close",
                    "/api/v1/periods/{period}/reopen",
                ];
                if !known.contains(&template.as_str()) && template != "/api/v1/webhooks" {
                    assert!(
                        [404, 422].contains(&res.status),
                        "{method} {path}: {} {}",
                        res.status,
                        res.text
                    );
                }
            }
            swept += 1;
        }
    }
    assert!(swept >= 30, "{swept} operations swept");

    for (path, was) in reads.iter().zip(before) {
        let now = gw.get(&a.key, path).await.expect(200).text;
        assert_eq!(now, was, "A's {path} changed");
    }
    assert!(
        receiver
            .received()
            .iter()
            .all(|r| !r.path.contains("mallory")),
        "B's webhook never hears of A's events"
    );
}

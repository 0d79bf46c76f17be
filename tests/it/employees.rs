use std::time::Duration;

use clokio_bus::types::Plan;
use clokio_tests::{Stack, db, json};

#[tokio::test]
async fn create_exactly_as_the_product_document_shows() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let res = gw
        .post(
            &t.key,
            "/api/v1/employees",
            &json!({
                "name": "Jane Smith",
                "email": "jane@company.com",
                "phone": "+1234567890",
                "position": "Software Engineer",
                "department": "Engineering",
                "location": "Main Office"
            }),
        )
        .await
        .expect(201);
    assert_eq!(res.message(), "Employee created successfully");
    let e = res.data();
    assert_eq!(e["employee_code"], "00001");
    assert_eq!(e["name"], "Jane Smith");
    assert_eq!(e["email"], "jane@company.com");
    assert_eq!(e["phone"], "+1234567890");
    assert_eq!(e["position"], "Software Engineer");
    assert_eq!(e["department"], "Engineering");
    assert_eq!(e["location"], "Main Office");
    assert_eq!(e["status"], "active");
    assert_eq!(e["role"], "employee");
    assert_eq!(e["hire_date"], chrono::Utc::now().date_naive().to_string());
    assert!(e["employee_id"].is_i64());
    let password = e["password"]
        .as_str()
        .expect("generated password returned once");
    assert_eq!(password.len(), 16);

    // Stored: an Argon2id hash, never the password.
    let (hash,): (String,) =
        sqlx::query_as("SELECT password_hash FROM employee.employees WHERE id = $1")
            .bind(e["employee_id"].as_i64().unwrap())
            .fetch_one(&db().await)
            .await
            .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(password));

    // The list never shows a password.
    let list = gw.get(&t.key, "/api/v1/employees").await.expect(200);
    assert_eq!(list.message(), "Data retrieved successfully");
    assert_eq!(list.data().as_array().unwrap().len(), 1);
    assert!(list.data()[0].get("password").is_none());
    assert!(!list.text.contains("password_hash"));
}

#[tokio::test]
async fn codes_are_generated_in_sequence_and_custom_codes_are_unique() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let a = gw.create_employee(&t.key, "A", json!({})).await;
    assert_eq!(a["employee_code"], "00001");
    let b = gw
        .create_employee(
            &t.key,
            "B",
            json!({"employee_code": "EMP-1042", "password": "s3cret-pass"}),
        )
        .await;
    assert_eq!(b["employee_code"], "EMP-1042");
    assert!(
        b.get("password").is_none(),
        "a chosen password is not echoed"
    );
    // Someone takes the next generated code by hand: generation skips it.
    gw.create_employee(&t.key, "C", json!({"employee_code": "00002"}))
        .await;
    let d = gw.create_employee(&t.key, "D", json!({})).await;
    assert_eq!(d["employee_code"], "00003");

    let dup = gw
        .post(&t.key, "/api/v1/employees", &json!({
            "name": "X", "email": "x@company.com", "location": "Main Office", "employee_code": "EMP-1042"
        }))
        .await;
    dup.expect_error(422, "The employee code has already been taken");
    let email = a["email"].as_str().unwrap().to_uppercase();
    let dup = gw
        .post(
            &t.key,
            "/api/v1/employees",
            &json!({"name": "X", "email": email, "location": "Main Office"}),
        )
        .await;
    dup.expect_error(422, "The email has already been taken");
    // Nothing was stored by the failed creates.
    let list = gw.get(&t.key, "/api/v1/employees").await.expect(200);
    assert_eq!(list.data().as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn validation_messages() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let ok = json!({"name": "Jane", "email": "jane@company.com", "location": "Main Office"});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases = vec![
        (without("name"), "The name field is required"),
        (with("name", json!("   ")), "The name field is required"),
        (without("email"), "The email field is required"),
        (without("location"), "The location field is required"),
        (
            with("email", json!("not-an-email")),
            "The email field must be a valid email address",
        ),
        (with("name", json!(42)), "The name field must be a string"),
        (
            with("location", json!("Nowhere")),
            "The selected location is invalid",
        ),
        (
            with("password", json!("short")),
            "The password field must be at least 8 characters",
        ),
        (
            with("birthdate", json!("1990-13-01")),
            "The birthdate field must be a valid date in YYYY-MM-DD format",
        ),
        (
            with("birthdate", json!("2999-01-01")),
            "The birthdate field must be a date before today",
        ),
        (
            with("hire_date", json!("01/02/2026")),
            "The hire_date field must be a valid date in YYYY-MM-DD format",
        ),
        (
            with("employee_code", json!("EMP 1042")),
            "The employee code may only contain letters, numbers, dashes and underscores",
        ),
        (
            with("name", json!("x".repeat(256))),
            "The name field must not be greater than 255 characters",
        ),
    ];
    for (body, message) in cases {
        gw.post(&t.key, "/api/v1/employees", &body)
            .await
            .expect_error(422, message);
    }
    let list = gw.get(&t.key, "/api/v1/employees").await.expect(200);
    assert_eq!(
        list.data().as_array().unwrap().len(),
        0,
        "a rejected create stored something"
    );
    // Explicit hire date and optional fields are kept.
    let e = gw
        .create_employee(
            &t.key,
            "Kim",
            json!({"hire_date": "2026-03-02", "birthdate": "1990-05-17", "address": "1 Main St"}),
        )
        .await;
    assert_eq!(e["hire_date"], "2026-03-02");
    assert_eq!(e["birthdate"], "1990-05-17");
    assert_eq!(e["address"], "1 Main St");
}

#[tokio::test]
async fn status_changes_and_filters() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    gw.create_employee(&t.key, "A", json!({})).await;
    gw.create_employee(&t.key, "B", json!({})).await;
    let res = gw
        .patch(
            &t.key,
            "/api/v1/employees/00001/status",
            &json!({"status": "inactive"}),
        )
        .await
        .expect(200);
    assert_eq!(res.message(), "Employee status updated successfully");
    assert_eq!(res.data()["status"], "inactive");
    assert_eq!(res.data()["employee_code"], "00001");

    let inactive = gw
        .get(&t.key, "/api/v1/employees?status=inactive")
        .await
        .expect(200);
    let codes: Vec<&str> = inactive
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["employee_code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["00001"]);
    let active = gw
        .get(&t.key, "/api/v1/employees?status=active")
        .await
        .expect(200);
    assert_eq!(active.data().as_array().unwrap().len(), 1);
    // The document's enum: neither an unknown status nor a blank one is a filter.
    for query in ["status=gone", "status="] {
        gw.get(&t.key, &format!("/api/v1/employees?{query}"))
            .await
            .expect_error(422, "The status field must be one of: active, inactive");
    }

    gw.patch(
        &t.key,
        "/api/v1/employees/00009/status",
        &json!({"status": "inactive"}),
    )
    .await
    .expect_error(404, "Employee not found");
    gw.patch(
        &t.key,
        "/api/v1/employees/bad%20code/status",
        &json!({"status": "inactive"}),
    )
    .await
    .expect_error(404, "Employee not found");
    gw.patch(&t.key, "/api/v1/employees/00001/status", &json!({}))
        .await
        .expect_error(422, "The status field is required");
    gw.patch(
        &t.key,
        "/api/v1/employees/00001/status",
        &json!({"status": "fired"}),
    )
    .await
    .expect_error(422, "The status field must be one of: active, inactive");
    let back = gw
        .patch(
            &t.key,
            "/api/v1/employees/00001/status",
            &json!({"status": "active"}),
        )
        .await
        .expect(200);
    assert_eq!(back.data()["status"], "active");
}

#[tokio::test]
async fn lifecycle_events_reach_jetstream_once_each() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let e = gw
        .create_employee(&t.key, "Eve", json!({"department": "Ops"}))
        .await;
    gw.patch(
        &t.key,
        "/api/v1/employees/00001/status",
        &json!({"status": "inactive"}),
    )
    .await
    .expect(200);
    // Setting the same status again changes nothing and announces nothing.
    gw.patch(
        &t.key,
        "/api/v1/employees/00001/status",
        &json!({"status": "inactive"}),
    )
    .await
    .expect(200);

    let subjects = &stack.bus_config.subjects;
    let mut stream = stack
        .events(format!(
            "{}.events.employee.{}.>",
            subjects.prefix(),
            t.org.id
        ))
        .await;
    let mut events = Vec::new();
    for _ in 0..2 {
        let event = stream.next().await;
        assert_eq!(
            event.body["id"],
            event.msg_id.as_str(),
            "event id is the de-duplication id"
        );
        assert_eq!(event.body["org_id"], t.org.id.to_string());
        events.push((event.subject, event.body));
    }
    assert_eq!(events[0].0, subjects.event("employee", t.org.id, "created"));
    assert_eq!(events[0].1["type"], "employee.created");
    assert_eq!(events[0].1["data"]["employee_id"], e["employee_id"]);
    assert_eq!(events[0].1["data"]["department"], "Ops");
    assert!(events[0].1["data"].get("password").is_none());
    assert_eq!(
        events[1].0,
        subjects.event("employee", t.org.id, "status_changed")
    );
    assert_eq!(events[1].1["data"]["status"], "inactive");
    // No third event for the no-op change.
    assert!(
        stream.none_within(Duration::from_millis(1500)).await,
        "unexpected extra event"
    );
    // And the outbox is empty once relayed.
    let (pending,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM employee.outbox WHERE subject LIKE $1")
            .bind(format!("{}.%", subjects.prefix()))
            .fetch_one(&db().await)
            .await
            .unwrap();
    assert_eq!(pending, 0);
}

/// An org far beyond one NATS message (1 MiB): the list still arrives whole and in order.
#[tokio::test]
async fn listing_thousands_of_employees_crosses_the_bus_in_chunks() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let pool = db().await;
    // Rows straight into the table: hashing 3,000 Argon2 passwords through the API would take
    // minutes and test nothing new.
    sqlx::query(
        "INSERT INTO employee.employees (org_id, employee_code, name, email, department, location_id, password_hash, hire_date) \
         SELECT $1, lpad(i::text, 5, '0'), 'Employee number ' || i, 'employee' || i || '@company.com', 'Department ' || (i % 7), \
                (SELECT id FROM employee.locations WHERE org_id = $1), '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA', '2026-01-05' \
         FROM generate_series(1, 3000) AS i",
    )
    .bind(t.org.id.as_uuid())
    .execute(&pool)
    .await
    .unwrap();
    let res = gw.get(&t.key, "/api/v1/employees").await.expect(200);
    assert!(
        res.text.len() > 1024 * 1024,
        "only {} bytes",
        res.text.len()
    );
    let list = res.data().as_array().unwrap();
    assert_eq!(list.len(), 3000);
    for (i, e) in list.iter().enumerate() {
        assert_eq!(e["employee_code"], format!("{:05}", i + 1));
        assert_eq!(e["location"], "Main Office");
    }
}

/// Lists are cached by every gateway and every employee-svc replica. A write through one gateway
/// must be visible to the very next read through the other, whichever replica answers either.
#[tokio::test]
async fn cached_lists_never_serve_a_write_stale_across_gateways_and_replicas() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    stack.start_employee_svc().await;
    let gws = [stack.start_gateway().await, stack.start_gateway().await];
    let t = stack.tenant(&gws[0], Plan::Enterprise).await;
    for i in 1..=20usize {
        let (writer, reader) = (&gws[i % 2], &gws[(i + 1) % 2]);
        let e = writer
            .create_employee(&t.key, &format!("E{i}"), json!({}))
            .await;
        for gw in [reader, writer, reader] {
            let list = gw.get(&t.key, "/api/v1/employees").await.expect(200);
            assert_eq!(
                list.data().as_array().unwrap().len(),
                i,
                "a read missed employee {i}"
            );
        }
        let code = e["employee_code"].as_str().unwrap();
        let status = if i % 2 == 0 { "inactive" } else { "active" };
        writer
            .patch(
                &t.key,
                &format!("/api/v1/employees/{code}/status"),
                &json!({"status": status}),
            )
            .await
            .expect(200);
        let inactive = reader
            .get(&t.key, "/api/v1/employees?status=inactive")
            .await
            .expect(200);
        assert_eq!(
            inactive.data().as_array().unwrap().len(),
            i / 2,
            "stale inactive list after {i}"
        );
        let all = reader.get(&t.key, "/api/v1/employees").await.expect(200);
        assert_eq!(
            all.data()[i - 1]["status"],
            status,
            "stale status of employee {i}"
        );
    }
    // The caches did serve: both gateways report hits.
    for gw in &gws {
        let hits = gw
            .metrics()
            .await
            .value("clokio_cache_total{cache=\"gateway_employee_list\",result=\"hit\"}");
        assert!(hits >= 10.0, "a gateway cache served only {hits} hits");
    }
}

/// The default hire date is today in the organization's time zone, not the server's. Kiritimati
/// (UTC+14) and Pago Pago (UTC-11) are never both on the UTC date, so one of them always differs.
#[tokio::test]
async fn hire_date_defaults_to_today_in_the_org_zone() {
    let (stack, gw) = Stack::start().await;
    for zone in ["Pacific/Kiritimati", "Pacific/Pago_Pago"] {
        let org = stack.create_org(Plan::Pro, None, zone).await;
        let key = stack.create_key(org.id).await;
        gw.post(
            &key,
            "/api/v1/locations",
            &json!({"name": "Main Office", "latitude": 0, "longitude": 0, "radius_meters": 10}),
        )
        .await
        .expect(201);
        let before = chrono::Utc::now()
            .with_timezone(&zone.parse::<chrono_tz::Tz>().unwrap())
            .date_naive();
        let e = gw.create_employee(&key, "Tz", json!({})).await;
        let after = chrono::Utc::now()
            .with_timezone(&zone.parse::<chrono_tz::Tz>().unwrap())
            .date_naive();
        let hire = e["hire_date"].as_str().unwrap();
        assert!(
            hire == before.to_string() || hire == after.to_string(),
            "{zone}: {hire} vs {before}"
        );
    }
}

/// A row that cannot be published (no stream takes its subject) stays in the outbox, and does not
/// hold up the events of other subjects behind it.
#[tokio::test]
async fn an_unpublishable_outbox_row_does_not_block_other_events() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let subjects = &stack.bus_config.subjects;
    let stuck = format!("{}.nostream.{}", subjects.prefix(), t.org.id);
    let pool = db().await;
    sqlx::query("INSERT INTO employee.outbox (event_id, subject, payload) VALUES ($1, $2, '{}')")
        .bind(uuid::Uuid::new_v4())
        .bind(&stuck)
        .execute(&pool)
        .await
        .unwrap();
    let e = gw
        .create_employee(&t.key, "After the stuck row", json!({}))
        .await;

    let created = stack
        .events(subjects.event("employee", t.org.id, "created"))
        .await
        .next()
        .await;
    let body = created.body;
    assert_eq!(body["data"]["employee_id"], e["employee_id"]);
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM employee.outbox WHERE subject = $1")
        .bind(&stuck)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 1, "the unpublishable row is kept, not dropped");
    sqlx::query("DELETE FROM employee.outbox WHERE subject = $1")
        .bind(&stuck)
        .execute(&pool)
        .await
        .unwrap();
}

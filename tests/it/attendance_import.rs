//! History import (all or nothing, every record checked) and leave.

use chrono::Duration;
use clokio_bus::types::Plan;
use clokio_tests::{Stack, json};
use serde_json::Value;

use crate::attendance::{now, stored, ts};

#[tokio::test]
async fn an_import_is_checked_record_by_record_and_all_or_nothing() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    gw.post(
        &t.key,
        "/api/v1/locations",
        &json!({"name": "Warehouse", "latitude": 1, "longitude": 1, "radius_meters": 100}),
    )
    .await
    .expect(201);
    let ann = gw
        .create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    gw.create_employee(&t.key, "Ben", json!({"employee_code": "E-2"}))
        .await;
    let mut events = stack
        .events(stack.bus_config.subjects.event("attendance", t.org.id, ">"))
        .await;
    let import = |records: Value| {
        let (gw, key) = (gw.clone(), t.key.clone());
        async move {
            gw.post(
                &key,
                "/api/v1/attendance/import",
                &json!({ "records": records }),
            )
            .await
        }
    };
    let ok = json!([
        {"nip": "E-1", "clock_in": "2026-01-05T09:00:00Z", "clock_out": "2026-01-05T17:00:00Z",
         "breaks": [{"start": "2026-01-05T12:00:00Z", "end": "2026-01-05T12:30:00Z"}]},
        {"nip": "E-1", "clock_in": "2026-01-06T09:00:00Z", "clock_out": "2026-01-06T13:00:00Z", "location": "Warehouse"},
        {"nip": "E-2", "clock_in": "2026-01-05T10:00:00Z", "clock_out": "2026-01-05T11:00:00Z", "breaks": []}
    ]);

    for (body, status, message) in [
        (json!({}), 422, "The records field is required"),
        (
            json!({"records": "x"}),
            422,
            "The records field must be an array",
        ),
        (
            json!({"records": []}),
            422,
            "The records field must contain at least 1 record",
        ),
        (
            json!({"records": [{"nip": "E-1", "clock_out": "2026-01-05T17:00:00Z"}]}),
            422,
            "The records.0.clock_in field is required",
        ),
        (
            json!({"records": [{"nip": "E-1", "clock_in": "5 Jan", "clock_out": "2026-01-05T17:00:00Z"}]}),
            422,
            "The records.0.clock_in field must be a valid RFC 3339 date-time (e.g. 2026-02-12T08:55:12Z)",
        ),
        (
            json!({"records": [ok[0].clone(), {"nip": "NOPE", "clock_in": "2026-01-05T09:00:00Z", "clock_out": "2026-01-05T17:00:00Z"}]}),
            422,
            "records.1: Employee NOPE not found",
        ),
        (
            json!({"records": [{"nip": "E-1", "clock_in": "2026-01-05T17:00:00Z", "clock_out": "2026-01-05T09:00:00Z"}]}),
            422,
            "records.0: clock_out must be after clock_in",
        ),
        (
            json!({"records": [{"nip": "E-1", "clock_in": "2026-01-05T09:00:00Z", "clock_out": "2026-01-05T17:00:00Z",
                "breaks": [{"start": "2026-01-05T08:00:00Z", "end": "2026-01-05T09:30:00Z"}]}]}),
            422,
            "records.0: breaks.0: a break must lie inside its session",
        ),
        (
            json!({"records": [{"nip": "E-1", "clock_in": "2026-01-05T09:00:00Z", "clock_out": "2026-01-05T17:00:00Z",
                "breaks": [{"start": "2026-01-05T12:00:00Z", "end": "2026-01-05T13:00:00Z"},
                           {"start": "2026-01-05T12:30:00Z", "end": "2026-01-05T12:45:00Z"}]}]}),
            422,
            "records.0: breaks must not overlap",
        ),
        (
            json!({"records": [ok[0].clone(), {"nip": "E-1", "clock_in": "2026-01-05T16:00:00Z", "clock_out": "2026-01-05T18:00:00Z"}]}),
            422,
            "records.1: overlaps records.0 of the same employee",
        ),
        (
            json!({"records": [{"nip": "E-1", "clock_in": "2026-01-05T09:00:00Z", "clock_out": "2026-01-05T17:00:00Z", "location": "Mars"}]}),
            422,
            "records.0: location Mars is not a location of the organization",
        ),
        (
            json!({"records": [{"nip": "E-1", "clock_in": ts(now() - Duration::hours(1)), "clock_out": ts(now() + Duration::hours(1))}]}),
            422,
            "records.0: clock_out must not be in the future",
        ),
    ] {
        gw.post(&t.key, "/api/v1/attendance/import", &body)
            .await
            .expect_error(status, message);
    }
    let many_breaks: Vec<Value> = (0..401)
        .map(|i| {
            let d = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + Duration::days(i);
            let breaks: Vec<Value> = (0..50)
                .map(|m| json!({"start": format!("{d}T10:{m:02}:00Z"), "end": format!("{d}T10:{m:02}:30Z")}))
                .collect();
            json!({"nip": "E-1", "clock_in": format!("{d}T09:00:00Z"), "clock_out": format!("{d}T17:00:00Z"), "breaks": breaks})
        })
        .collect();
    import(Value::Array(many_breaks))
        .await
        .expect_error(422, "An import may not carry more than 20000 breaks in all");
    let too_many: Vec<Value> = (0..5001).map(|_| ok[0].clone()).collect();
    import(Value::Array(too_many))
        .await
        .expect_error(422, "The records field must not have more than 5000 items");
    assert_eq!(stored(&t).await, (0, 0));

    let res = import(ok.clone()).await.expect(201);
    assert_eq!(res.message(), "Attendance imported successfully");
    assert_eq!(res.data()["imported"], 3);
    let ids = res.data()["attendance_ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 3);
    assert_eq!(stored(&t).await, (3, 1));
    let res = gw
        .get(
            &t.key,
            "/api/v1/attendance/employee/E-1/today?date=2026-01-06",
        )
        .await
        .expect(200);
    assert_eq!(res.data()["work_sessions"][0]["location"], "Warehouse");
    assert_eq!(res.data()["work_sessions"][0]["attendance_id"], ids[1]);

    // One record clashing with what is stored: nothing of the batch is kept.
    let res = import(json!([
        {"nip": "E-2", "clock_in": "2026-01-07T09:00:00Z", "clock_out": "2026-01-07T10:00:00Z"},
        {"nip": "E-1", "clock_in": "2026-01-05T16:30:00Z", "clock_out": "2026-01-05T18:00:00Z"}
    ]))
    .await
    .expect(409);
    assert_eq!(
        res.message(),
        format!(
            "records.1: overlaps the recorded session {} of employee E-1",
            ids[0]
        )
    );
    assert_eq!(stored(&t).await, (3, 1));
    // Nor may history overlap an open session.
    gw.post(
        &t.key,
        "/api/v1/attendance/clock-in",
        &json!({"nip": "E-2", "timestamp": ts(now() - Duration::hours(2))}),
    )
    .await
    .expect(200);
    import(
        json!([{"nip": "E-2", "clock_in": ts(now() - Duration::hours(3)),
        "clock_out": ts(now() - Duration::minutes(90))}]),
    )
    .await
    .expect(409);
    // Live events after imported history stay in order with it.
    gw.clock_out(&t.key, "E-2").await.expect(200);
    let recent_in = now() - Duration::minutes(50);
    import(json!([{"nip": "E-1", "clock_in": ts(recent_in), "clock_out": ts(recent_in + Duration::minutes(20))}]))
        .await
        .expect(201);
    gw.post(
        &t.key,
        "/api/v1/attendance/clock-in",
        &json!({"nip": "E-1", "timestamp": ts(recent_in + Duration::minutes(10))}),
    )
    .await
    .expect_error(
        422,
        &format!(
            "The timestamp must not be earlier than the employee's last attendance event ({})",
            ts(recent_in + Duration::minutes(20))
        ),
    );

    // Imported history is published, marked as imported, in record order.
    let mut seen = Vec::new();
    for _ in 0..6 {
        let e = events.next().await;
        seen.push((
            e.body["data"]["event"].as_str().unwrap().to_owned(),
            e.body["data"]["imported"].clone(),
        ));
        assert_eq!(e.body["data"]["employee_id"], ann["employee_id"]);
    }
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "clock-in",
            "break-start",
            "break-end",
            "clock-out",
            "clock-in",
            "clock-out"
        ]
    );
    assert!(seen.iter().all(|(_, imported)| imported == true));
}

#[tokio::test]
async fn an_import_larger_than_one_nats_message_is_one_transaction() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    for code in ["L-1", "L-2"] {
        gw.create_employee(&t.key, code, json!({"employee_code": code}))
            .await;
    }
    // 5,000 records with three breaks each: about 1.6 MB on the bus.
    let day0 = chrono::NaiveDate::from_ymd_opt(2019, 1, 1).unwrap();
    let records: Vec<Value> = (0..5000)
        .map(|i| {
            let d = day0 + Duration::days(i / 2);
            let code = if i % 2 == 0 { "L-1" } else { "L-2" };
            json!({"nip": code, "clock_in": format!("{d}T08:00:00Z"), "clock_out": format!("{d}T16:00:00Z"),
                "breaks": [
                    {"start": format!("{d}T10:00:00Z"), "end": format!("{d}T10:10:00Z")},
                    {"start": format!("{d}T12:00:00Z"), "end": format!("{d}T12:30:00Z")},
                    {"start": format!("{d}T14:00:00Z"), "end": format!("{d}T14:10:00Z")}]})
        })
        .collect();
    let body = json!({ "records": records });
    assert!(serde_json::to_vec(&body).unwrap().len() > 1024 * 1024);
    let res = gw
        .send(
            gw.request(
                reqwest::Method::POST,
                Some(&t.key),
                "/api/v1/attendance/import",
            )
            .header("Idempotency-Key", "history-2019")
            .json(&body),
        )
        .await
        .expect(201);
    assert_eq!(res.data()["imported"], 5000);
    assert_eq!(stored(&t).await, (5000, 15000));
    // A retried upload is answered from the first, and stores nothing twice.
    let again = gw
        .send(
            gw.request(
                reqwest::Method::POST,
                Some(&t.key),
                "/api/v1/attendance/import",
            )
            .header("Idempotency-Key", "history-2019")
            .json(&body),
        )
        .await
        .expect(201);
    assert_eq!(res.text, again.text);
    assert_eq!(stored(&t).await, (5000, 15000));
    let res = gw
        .get(&t.key, "/api/v1/attendance/daily?date=2019-01-01")
        .await
        .expect(200);
    assert_eq!(res.data()[0]["total_hours"], 7.17);
    assert_eq!(res.data()[0]["break_minutes"], 50);
}

#[tokio::test]
async fn leave_is_recorded_listed_by_month_and_deleted() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let ann = gw
        .create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    let mut events = stack
        .events(stack.bus_config.subjects.event("leave", t.org.id, ">"))
        .await;
    let create = |body: Value| {
        let (gw, key) = (gw.clone(), t.key.clone());
        async move { gw.post(&key, "/api/v1/leaves", &body).await }
    };
    let res = create(json!({"nip": "E-1", "start_date": "2026-01-30", "end_date": "2026-02-03", "type": "annual"}))
        .await
        .expect(201);
    assert_eq!(res.message(), "Leave created successfully");
    let leave = res.data().clone();
    assert_eq!(leave["employee_id"], ann["employee_id"]);
    assert_eq!(leave["nip"], "E-1");
    assert_eq!(leave["employee_name"], "Ann");
    assert_eq!(leave["start_date"], "2026-01-30");
    assert_eq!(leave["end_date"], "2026-02-03");
    assert_eq!(leave["type"], "annual");
    assert!(leave["id"].as_i64().unwrap() > 0);
    let march = create(
        json!({"nip": "E-1", "start_date": "2026-03-02", "end_date": "2026-03-02", "type": "sick"}),
    )
    .await
    .expect(201);

    for (body, status, message) in [
        (
            json!({"nip": "E-1", "start_date": "2026-02-03", "end_date": "2026-02-05", "type": "sick"}),
            409,
            format!(
                "The employee already has leave on these dates (leave {})",
                leave["id"]
            ),
        ),
        (
            json!({"nip": "E-1", "start_date": "2026-02-10", "end_date": "2026-02-09", "type": "sick"}),
            422,
            "The end_date field must be a date after or equal to start_date".to_owned(),
        ),
        (
            json!({"nip": "E-1", "start_date": "2026-02-10", "end_date": "2026-02-11", "type": "holiday"}),
            422,
            "The selected type is invalid (annual, sick, unpaid or other)".to_owned(),
        ),
        (
            json!({"nip": "E-1", "end_date": "2026-02-11", "type": "sick"}),
            422,
            "The start_date field is required".to_owned(),
        ),
        (
            json!({"nip": "E-1", "start_date": "2026-02-31", "end_date": "2026-03-01", "type": "sick"}),
            422,
            "The start_date field must be a valid date in YYYY-MM-DD format".to_owned(),
        ),
        (
            json!({"nip": "NOPE", "start_date": "2026-02-10", "end_date": "2026-02-11", "type": "sick"}),
            404,
            "Employee not found".to_owned(),
        ),
        (
            json!({"nip": "E-1", "start_date": "2026-01-01", "end_date": "2027-01-02", "type": "unpaid"}),
            422,
            "A leave may not be longer than 366 days".to_owned(),
        ),
    ] {
        create(body).await.expect_error(status, &message);
    }

    for month in ["2", "02"] {
        let res = gw
            .get(&t.key, &format!("/api/v1/leaves?month={month}&year=2026"))
            .await
            .expect(200);
        assert_eq!(res.data(), &json!([leave]));
    }
    let res = gw
        .get(&t.key, "/api/v1/leaves?month=1&year=2026")
        .await
        .expect(200);
    assert_eq!(res.data().as_array().unwrap().len(), 1);
    gw.get(&t.key, "/api/v1/leaves?month=13&year=2026")
        .await
        .expect_error(422, "The month field must be between 1 and 12");
    gw.get(&t.key, "/api/v1/leaves?year=2026")
        .await
        .expect_error(422, "The month field is required");

    let delete_once = || {
        gw.send(
            gw.request(
                reqwest::Method::DELETE,
                Some(&t.key),
                &format!("/api/v1/leaves/{}", leave["id"]),
            )
            .header("Idempotency-Key", "delete-leave-1"),
        )
    };
    let res = delete_once().await.expect(200);
    assert_eq!(res.message(), "Leave deleted successfully");
    assert_eq!(res.data(), &leave);
    // A retry after a lost answer gets the first answer again.
    let again = delete_once().await.expect(200);
    assert_eq!(again.text, res.text);
    gw.delete(&t.key, &format!("/api/v1/leaves/{}", leave["id"]))
        .await
        .expect_error(404, "Leave not found");
    gw.delete(&t.key, "/api/v1/leaves/abc")
        .await
        .expect_error(404, "Leave not found");
    let res = gw
        .get(&t.key, "/api/v1/leaves?month=2&year=2026")
        .await
        .expect(200);
    assert_eq!(res.data(), &json!([]));

    let created = events.next().await;
    assert_eq!(
        created.subject,
        stack
            .bus_config
            .subjects
            .event("leave", t.org.id, "created")
    );
    assert_eq!(created.body["data"], leave);
    let second = events.next().await;
    assert_eq!(second.body["data"], *march.data());
    let deleted = events.next().await;
    assert_eq!(deleted.body["type"], "leave.deleted");
    assert_eq!(deleted.body["data"], leave);
    assert!(
        events
            .none_within(std::time::Duration::from_millis(300))
            .await
    );
}

//! The monthly summary for payroll, JSON and CSV, built from a month with known answers through
//! the public API (history import, leave, settings). reporting-svc reads a projection fed by
//! events, so each test waits (bounded) until the summary shows what was written.

use std::time::{Duration, Instant};

use chrono::Datelike;

use clokio_bus::types::Plan;
use clokio_tests::{Gateway, Stack, Tenant, json};
use serde_json::Value;

/// The summary's data once it equals `want`, or the last one seen after 15 s.
async fn summary_until(gw: &Gateway, t: &Tenant, query: &str, want: &Value) -> Value {
    let started = Instant::now();
    loop {
        let res = gw
            .get(&t.key, &format!("/api/v1/attendance/summary?{query}"))
            .await
            .expect(200);
        assert_eq!(res.message(), "Monthly summary retrieved");
        if res.data() == want || started.elapsed() > Duration::from_secs(15) {
            return res.data().clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The summary's CSV download: its headers and body.
pub(crate) async fn csv(
    gw: &Gateway,
    t: &Tenant,
    query: &str,
) -> (reqwest::header::HeaderMap, String) {
    let res = gw
        .request(
            reqwest::Method::GET,
            Some(&t.key),
            &format!("/api/v1/attendance/summary?{query}&format=csv"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    (headers, res.text().await.unwrap())
}

/// The CSV lines the JSON rows should give.
fn csv_of(rows: &Value) -> String {
    let mut out = String::from(
        "employee_id,employee_name,nip,department,days_present,late_count,total_hours,overtime_hours,leave_days,absence_count,raw_total_hours,auto_break_minutes,auto_closed_count,closed_at\n",
    );
    for r in rows.as_array().unwrap() {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r["employee_id"],
            r["employee_name"].as_str().unwrap(),
            r["nip"].as_str().unwrap(),
            r["department"].as_str().unwrap_or(""),
            r["days_present"],
            r["late_count"],
            r["total_hours"],
            r["overtime_hours"],
            r["leave_days"],
            r["absence_count"],
            r["raw_total_hours"],
            r["auto_break_minutes"],
            r["auto_closed_count"],
            r["closed_at"].as_str().unwrap_or("")
        ));
    }
    out
}

#[tokio::test]
async fn october_in_berlin_with_every_rule() {
    let (stack, gw) = Stack::start().await;
    let t = stack
        .tenant_in(&gw, Plan::Enterprise, "Europe/Berlin")
        .await;
    gw.patch(
        &t.key,
        "/api/v1/organization",
        &json!({"holidays": ["2026-10-12"]}),
    )
    .await
    .expect(200);
    let anna = gw
        .create_employee(
            &t.key,
            "Anna",
            json!({"employee_code": "A-1", "department": "Ops", "hire_date": "2026-01-01"}),
        )
        .await;
    let ben = gw
        .create_employee(
            &t.key,
            "Ben",
            json!({"employee_code": "B-1", "department": "Ops", "hire_date": "2026-10-15"}),
        )
        .await;
    let cleo = gw
        .create_employee(
            &t.key,
            "Cleo",
            json!({"employee_code": "C-1", "hire_date": "2026-01-01"}),
        )
        .await;
    // Deactivated now (after October): active through October, so still in October's summary.
    gw.patch(
        &t.key,
        "/api/v1/employees/C-1/status",
        &json!({"status": "inactive"}),
    )
    .await
    .expect(200);
    gw.post(
        &t.key,
        "/api/v1/attendance/import",
        &json!({"records": [
            // Thu 1: 09:05–17:05 CEST, on time, 8 h.
            {"nip": "A-1", "clock_in": "2026-10-01T07:05:00Z", "clock_out": "2026-10-01T15:05:00Z"},
            // Fri 2: 09:20–18:20, late, 9 h: 1 h overtime.
            {"nip": "A-1", "clock_in": "2026-10-02T07:20:00Z", "clock_out": "2026-10-02T16:20:00Z"},
            // Sat 3: 4 h, all overtime, never late.
            {"nip": "A-1", "clock_in": "2026-10-03T08:00:00Z", "clock_out": "2026-10-03T12:00:00Z"},
            // Mon 12, a holiday: 2 h, all overtime.
            {"nip": "A-1", "clock_in": "2026-10-12T08:00:00Z", "clock_out": "2026-10-12T10:00:00Z"},
            // Sat 24 22:00 CEST to Sun 25 06:00 CET: 9 h across the DST change, all overtime.
            {"nip": "A-1", "clock_in": "2026-10-24T20:00:00Z", "clock_out": "2026-10-25T05:00:00Z"},
            // Mon 26 (CET): 09:11 is 08:11Z, late; 7.5 h net.
            {"nip": "A-1", "clock_in": "2026-10-26T08:11:00Z", "clock_out": "2026-10-26T16:11:00Z",
             "breaks": [{"start": "2026-10-26T11:00:00Z", "end": "2026-10-26T11:30:00Z"}]},
            // Sat 31 22:00 to Sun 1 November 06:00: 8 h, October's, all overtime.
            {"nip": "A-1", "clock_in": "2026-10-31T21:00:00Z", "clock_out": "2026-11-01T05:00:00Z"}
        ]}),
    )
    .await
    .expect(201);
    gw.post(
        &t.key,
        "/api/v1/leaves",
        &json!({"nip": "A-1", "start_date": "2026-10-19", "end_date": "2026-10-20", "type": "annual"}),
    )
    .await
    .expect(201);

    // October has 22 weekdays; the 12th is a holiday: 21 work days.
    let want = json!([
        {"employee_id": anna["employee_id"], "employee_name": "Anna", "nip": "A-1", "department": "Ops",
         "days_present": 7, "late_count": 2, "total_hours": 47.5, "overtime_hours": 24.0,
         "leave_days": 2, "absence_count": 16, "raw_total_hours": 47.5, "auto_break_minutes": 0, "auto_closed_count": 0, "closed_at": null},
        // Hired Thursday the 15th: 12 work days from then, all absent.
        {"employee_id": ben["employee_id"], "employee_name": "Ben", "nip": "B-1", "department": "Ops",
         "days_present": 0, "late_count": 0, "total_hours": 0.0, "overtime_hours": 0.0,
         "leave_days": 0, "absence_count": 12, "raw_total_hours": 0.0, "auto_break_minutes": 0, "auto_closed_count": 0, "closed_at": null},
        {"employee_id": cleo["employee_id"], "employee_name": "Cleo", "nip": "C-1", "department": null,
         "days_present": 0, "late_count": 0, "total_hours": 0.0, "overtime_hours": 0.0,
         "leave_days": 0, "absence_count": 21, "raw_total_hours": 0.0, "auto_break_minutes": 0, "auto_closed_count": 0, "closed_at": null}
    ]);
    let got = summary_until(&gw, &t, "month=10&year=2026", &want).await;
    assert_eq!(got, want);

    let (headers, body) = csv(&gw, &t, "month=10&year=2026").await;
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"clokio-summary-2026-10.csv\""
    );
    assert_eq!(body, csv_of(&want));
    assert_eq!(
        body.lines().nth(1).unwrap(),
        format!(
            "{},Anna,A-1,Ops,7,2,47.5,24.0,2,16,47.5,0,0,",
            anna["employee_id"]
        )
    );

    // Rebuild: the projection's rows are lost and its consumer deleted; the next consumer replays
    // the stream and the month comes out the same.
    let db = clokio_tests::db().await;
    for table in ["sessions", "leaves"] {
        sqlx::query(&format!("DELETE FROM reporting.{table} WHERE org_id = $1"))
            .bind(t.org.id.as_uuid())
            .execute(&db)
            .await
            .unwrap();
    }
    let res = gw
        .get(&t.key, "/api/v1/attendance/summary?month=10&year=2026")
        .await
        .expect(200);
    assert_eq!(res.data()[0]["days_present"], 0, "the rows are gone");
    async_nats::jetstream::new(stack.nats.clone())
        .get_stream(stack.bus_config.subjects.events_stream())
        .await
        .unwrap()
        .delete_consumer("reporting")
        .await
        .unwrap();
    assert_eq!(
        summary_until(&gw, &t, "month=10&year=2026", &want).await,
        want,
        "rebuilt from the stream"
    );

    // November holds only the rest of that last night: nothing (it belongs to October 31).
    let res = gw
        .get(&t.key, "/api/v1/attendance/summary?month=11&year=2026")
        .await
        .expect(200);
    assert_eq!(res.data()[0]["nip"], "A-1");
    assert_eq!(res.data()[0]["days_present"], 0);
    assert_eq!(res.data()[0]["total_hours"], 0.0);
    // Next month (counted from today, whenever the test runs): Cleo, deactivated today, is
    // inactive all month and has no data, so she is left out; no day of it is past yet.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive();
    let next = today
        .with_day(1)
        .and_then(|first| first.checked_add_months(chrono::Months::new(1)))
        .unwrap();
    let res = gw
        .get(
            &t.key,
            &format!(
                "/api/v1/attendance/summary?month={}&year={}",
                next.month(),
                next.year()
            ),
        )
        .await
        .expect(200);
    let codes: Vec<&str> = res
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["nip"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["A-1", "B-1"]);
    assert_eq!(res.data()[0]["absence_count"], 0);
    // Before Ben was hired: only Anna and Cleo.
    let res = gw
        .get(&t.key, "/api/v1/attendance/summary?month=9&year=2026")
        .await
        .expect(200);
    assert_eq!(res.data().as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn november_in_new_york_across_the_dst_change() {
    let (stack, gw) = Stack::start().await;
    let t = stack
        .tenant_in(&gw, Plan::Enterprise, "America/New_York")
        .await;
    let nora = gw
        .create_employee(
            &t.key,
            "Nora, Jr.",
            json!({"employee_code": "N-1", "department": "=cmd", "hire_date": "2025-01-01"}),
        )
        .await;
    gw.post(
        &t.key,
        "/api/v1/attendance/import",
        &json!({"records": [
            // Sat 1 22:00 EDT to Sun 2 06:00 EST (the 25-hour day): 9 h, all overtime.
            {"nip": "N-1", "clock_in": "2025-11-02T02:00:00Z", "clock_out": "2025-11-02T11:00:00Z"},
            // Mon 3, 09:05 EST is 14:05Z: on time (it would be 10:05 at the summer offset).
            {"nip": "N-1", "clock_in": "2025-11-03T14:05:00Z", "clock_out": "2025-11-03T22:05:00Z"},
            // Tue 4, 09:15 EST: late; 8.5 h with 30 minutes of break: 8 h.
            {"nip": "N-1", "clock_in": "2025-11-04T14:15:00Z", "clock_out": "2025-11-04T22:45:00Z",
             "breaks": [{"start": "2025-11-04T17:00:00Z", "end": "2025-11-04T17:30:00Z"}]}
        ]}),
    )
    .await
    .expect(201);
    // 20 work days in November 2025; present on two of them.
    let want = json!([
        {"employee_id": nora["employee_id"], "employee_name": "Nora, Jr.", "nip": "N-1", "department": "=cmd",
         "days_present": 3, "late_count": 1, "total_hours": 25.0, "overtime_hours": 9.0,
         "leave_days": 0, "absence_count": 18, "raw_total_hours": 25.0, "auto_break_minutes": 0, "auto_closed_count": 0, "closed_at": null}
    ]);
    assert_eq!(
        summary_until(&gw, &t, "month=11&year=2025", &want).await,
        want
    );
    let (_, body) = csv(&gw, &t, "month=11&year=2025").await;
    assert_eq!(
        body.lines().nth(1).unwrap(),
        format!(
            "{},\"Nora, Jr.\",N-1,\"'=cmd\",3,1,25.0,9.0,0,18,25.0,0,0,",
            nora["employee_id"]
        ),
        "quoted, and a formula defused"
    );

    // The same events again (a redelivery that got past de-duplication): nothing changes.
    let mut events = stack
        .events(stack.bus_config.subjects.event("attendance", t.org.id, ">"))
        .await;
    let js = async_nats::jetstream::new(stack.nats.clone());
    for _ in 0..8 {
        let e = events.next().await;
        js.publish(e.subject, serde_json::to_vec(&e.body).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // Wait until the projection's consumer has taken and acknowledged all of them.
    let stream = js
        .get_stream(stack.bus_config.subjects.events_stream())
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let info = stream.consumer_info("reporting").await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the projection did not take the redelivered events: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let res = gw
        .get(&t.key, "/api/v1/attendance/summary?month=11&year=2025")
        .await
        .expect(200);
    assert_eq!(res.data(), &want);
}

#[tokio::test]
async fn summary_requests_are_checked_and_scoped_to_the_org() {
    let (stack, gw) = Stack::start().await;
    let a = stack.tenant(&gw, Plan::Enterprise).await;
    let b = stack.tenant(&gw, Plan::Enterprise).await;
    gw.create_employee(
        &a.key,
        "Alice",
        json!({"employee_code": "A-1", "hire_date": "2026-01-01"}),
    )
    .await;
    for (query, message) in [
        ("year=2026", "The month field is required"),
        ("month=2", "The year field is required"),
        (
            "month=13&year=2026",
            "The month field must be between 1 and 12",
        ),
        (
            "month=0&year=2026",
            "The month field must be between 1 and 12",
        ),
        (
            "month=ab&year=2026",
            "The month field must be between 1 and 12",
        ),
        (
            "month=2&year=26",
            "The year field must be a four-digit year from 1970",
        ),
        (
            "month=2&year=2026&format=xml",
            "The format field must be json or csv",
        ),
    ] {
        gw.get(&a.key, &format!("/api/v1/attendance/summary?{query}"))
            .await
            .expect_error(422, message);
    }
    let res = gw
        .get(&a.key, "/api/v1/attendance/summary?month=02&year=2026")
        .await
        .expect(200);
    assert_eq!(res.data().as_array().unwrap().len(), 1);
    let res = gw
        .get(&b.key, "/api/v1/attendance/summary?month=2&year=2026")
        .await
        .expect(200);
    assert_eq!(res.data(), &json!([]));
    let (_, body) = csv(&gw, &b, "month=2&year=2026").await;
    assert_eq!(body.lines().count(), 1, "the header row only: {body}");
}

/// 2,500 employees: the CSV crosses the bus in several chunks and matches the JSON row for row.
/// Employees are written straight into employee-svc's tables (the API would spend minutes on
/// their passwords); their attendance goes through the API.
#[tokio::test]
async fn a_large_csv_streams_the_same_numbers_as_the_json() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let n = 2500;
    clokio_tests::seed_employees(t.org.id, "S", n, "2026-02-01").await;
    // The first thousand have the longest names and departments allowed, in 4-byte characters:
    // about 2 KiB a row, so a thousand rows would not fit in one NATS message.
    sqlx::query(
        "UPDATE employee.employees SET name = repeat('😀', 250) || id, department = repeat('🏭', 255) \
         WHERE org_id = $1 AND employee_code <= 'S01000'",
    )
    .bind(t.org.id.as_uuid())
    .execute(&clokio_tests::db().await)
    .await
    .unwrap();
    let records: Vec<Value> = (1..=n)
        .map(|i| {
            let day = 2 + i % 5; // Monday 2 to Friday 6 March 2026
            json!({"nip": format!("S{i:05}"), "clock_in": format!("2026-03-0{day}T09:00:00Z"),
                "clock_out": format!("2026-03-0{day}T{}:00:00Z", 17 + i % 3)})
        })
        .collect();
    gw.post(
        &t.key,
        "/api/v1/attendance/import",
        &json!({ "records": records }),
    )
    .await
    .expect(201);
    let started = Instant::now();
    let json_rows = loop {
        let res = gw
            .get(&t.key, "/api/v1/attendance/summary?month=3&year=2026")
            .await
            .expect(200);
        let rows = res.data().as_array().unwrap().clone();
        let seen: i64 = rows
            .iter()
            .map(|r| r["days_present"].as_i64().unwrap())
            .sum();
        if seen == i64::from(n) || started.elapsed() > Duration::from_secs(20) {
            break Value::Array(rows);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(json_rows.as_array().unwrap().len(), n as usize);
    let first = &json_rows[0];
    // S00001: Tuesday 3rd, 09:00–18:00: 9 h, 1 h overtime; 21 other work days of March absent.
    assert_eq!(first["total_hours"], 9.0);
    assert_eq!(first["overtime_hours"], 1.0);
    assert_eq!(first["absence_count"], 21);
    let (headers, body) = csv(&gw, &t, "month=3&year=2026").await;
    // Streamed: sent in chunks as reporting-svc makes them, not built whole first.
    assert_eq!(headers["transfer-encoding"], "chunked");
    assert!(headers.get("content-length").is_none());
    assert!(body.len() > 2_000_000);
    assert_eq!(body, csv_of(&json_rows));
}

/// The table upkeep every service runs (whatever autovacuum does) vacuums and analyzes the tables
/// whose churn passed the threshold, here the projection's, and leaves the others alone.
#[tokio::test]
async fn the_table_upkeep_vacuums_and_analyzes_the_projection() {
    let (stack, _gw) = Stack::start().await;
    let pool =
        clokio_runtime::db::connect(&stack.database_url, "reporting", 2, Duration::from_secs(5))
            .await
            .unwrap();
    let stamps = "SELECT coalesce(max(greatest(last_vacuum, last_autovacuum)), 'epoch'), \
                         coalesce(max(greatest(last_analyze, last_autoanalyze)), 'epoch') \
                  FROM pg_stat_user_tables WHERE schemaname = 'reporting' AND relname = 'sessions'";
    type Stamps = (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>);
    let untouched = clokio_runtime::db::vacuum(&pool, i64::MAX).await.unwrap();
    assert!(untouched.is_empty(), "{untouched:?}");
    let before: Stamps = sqlx::query_as(stamps).fetch_one(&pool).await.unwrap();
    let vacuumed = clokio_runtime::db::vacuum(&pool, 0).await.unwrap();
    for table in ["sessions", "leaves"] {
        assert!(vacuumed.iter().any(|t| t == table), "{vacuumed:?}");
    }
    assert!(!vacuumed.iter().any(|t| t == "_sqlx_migrations"));
    // The statistics collector reports with a short delay.
    let started = Instant::now();
    let after: Stamps = loop {
        let after: Stamps = sqlx::query_as(stamps).fetch_one(&pool).await.unwrap();
        if (after.0 > before.0 && after.1 > before.1) || started.elapsed() > Duration::from_secs(5)
        {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(after.0 > before.0, "vacuumed: {before:?} → {after:?}");
    assert!(after.1 > before.1, "analyzed: {before:?} → {after:?}");
}

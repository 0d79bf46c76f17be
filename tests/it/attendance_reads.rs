//! Attendance reads: daily records exactly as the seed shows, ranges, one employee's history, the
//! detailed daily activity, night shifts, DST days of 23 and 25 hours, the current shift, and a
//! report too large for one NATS message.

use chrono::{Duration, NaiveDate, TimeZone};
use clokio_bus::types::Plan;
use clokio_tests::{Gateway, Stack, Tenant, json};
use serde_json::Value;

use crate::attendance::{keys, now, ts};

async fn import(gw: &Gateway, t: &Tenant, records: Value) {
    gw.post(
        &t.key,
        "/api/v1/attendance/import",
        &json!({ "records": records }),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn daily_range_and_employee_records() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let sarah = gw
        .create_employee(
            &t.key,
            "Sarah Johnson",
            json!({"employee_code": "EMP-1042"}),
        )
        .await;
    let ben = gw
        .create_employee(&t.key, "Ben", json!({"employee_code": "E-2"}))
        .await;
    gw.create_employee(&t.key, "Absent", json!({"employee_code": "E-3"}))
        .await;
    import(
        &gw,
        &t,
        json!([
            {"nip": "EMP-1042", "clock_in": "2026-02-10T08:55:00Z", "clock_out": "2026-02-10T17:32:00Z",
             "breaks": [{"start": "2026-02-10T12:00:00Z", "end": "2026-02-10T12:45:00Z"}]},
            {"nip": "E-2", "clock_in": "2026-02-10T09:20:00Z", "clock_out": "2026-02-10T12:00:00Z"},
            {"nip": "E-2", "clock_in": "2026-02-10T13:00:00Z", "clock_out": "2026-02-10T18:00:00Z"},
            // A Saturday: no schedule, so never late.
            {"nip": "E-2", "clock_in": "2026-02-14T11:00:00Z", "clock_out": "2026-02-14T13:00:00Z"},
            {"nip": "EMP-1042", "clock_in": "2026-03-03T09:00:00Z", "clock_out": "2026-03-03T10:00:00Z"}
        ]),
    )
    .await;

    let res = gw
        .get(&t.key, "/api/v1/attendance/daily?date=2026-02-10")
        .await
        .expect(200);
    assert_eq!(res.message(), "Daily attendance retrieved");
    let records = res.data().as_array().unwrap();
    assert_eq!(records.len(), 2, "{}", res.text);
    assert_eq!(
        keys(&records[0]),
        [
            "auto_break_minutes",
            "auto_closed",
            "break_minutes",
            "clock_in",
            "clock_out",
            "employee_id",
            "employee_name",
            "nip",
            "raw_total_hours",
            "status",
            "total_hours"
        ]
    );
    assert_eq!(
        records[0],
        json!({"employee_id": sarah["employee_id"], "employee_name": "Sarah Johnson", "nip": "EMP-1042",
            "clock_in": "2026-02-10T08:55:00Z", "clock_out": "2026-02-10T17:32:00Z",
            "total_hours": 7.87, "break_minutes": 45, "status": "present",
            "raw_total_hours": 7.87, "auto_break_minutes": 0, "auto_closed": false})
    );
    // First clock-in 09:20 (after 09:00 + 10 minutes of grace), last clock-out 18:00.
    assert_eq!(
        records[1],
        json!({"employee_id": ben["employee_id"], "employee_name": "Ben", "nip": "E-2",
            "clock_in": "2026-02-10T09:20:00Z", "clock_out": "2026-02-10T18:00:00Z",
            "total_hours": 7.67, "break_minutes": 0, "status": "late",
            "raw_total_hours": 7.67, "auto_break_minutes": 0, "auto_closed": false})
    );
    let res = gw
        .get(&t.key, "/api/v1/attendance/daily?date=2026-02-14")
        .await
        .expect(200);
    assert_eq!(res.data()[0]["status"], "present");
    assert_eq!(res.data()[0]["total_hours"], 2.0);
    let res = gw
        .get(&t.key, "/api/v1/attendance/daily?date=2026-02-11")
        .await
        .expect(200);
    assert_eq!(res.data(), &json!([]));

    let res = gw
        .get(
            &t.key,
            "/api/v1/attendance/range?start=2026-02-01&end=2026-03-03",
        )
        .await
        .expect(200);
    let dates: Vec<(&str, &str)> = res
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["date"].as_str().unwrap(), r["nip"].as_str().unwrap()))
        .collect();
    assert_eq!(
        dates,
        [
            ("2026-02-10", "EMP-1042"),
            ("2026-02-10", "E-2"),
            ("2026-02-14", "E-2"),
            ("2026-03-03", "EMP-1042")
        ]
    );
    assert_eq!(res.data()[0]["total_hours"], 7.87);

    let res = gw
        .get(
            &t.key,
            "/api/v1/attendance/employee/EMP-1042?start=2026-02-01&end=2026-02-28",
        )
        .await
        .expect(200);
    assert_eq!(res.data().as_array().unwrap().len(), 1);
    assert_eq!(res.data()[0]["date"], "2026-02-10");
    assert_eq!(res.data()[0]["break_minutes"], 45);
    // Default: the last 31 days, none of which has records here.
    let res = gw
        .get(&t.key, "/api/v1/attendance/employee/EMP-1042")
        .await
        .expect(200);
    assert_eq!(res.data(), &json!([]));

    for (path, status, message) in [
        (
            "/api/v1/attendance/daily",
            422,
            "The date field is required",
        ),
        (
            "/api/v1/attendance/daily?date=",
            422,
            "The date field is required",
        ),
        (
            "/api/v1/attendance/today/detailed?date=",
            422,
            "The date field must be a valid date in YYYY-MM-DD format",
        ),
        (
            "/api/v1/attendance/employee/EMP-1042?start=&end=2026-02-01",
            422,
            "The start field must be a valid date in YYYY-MM-DD format",
        ),
        (
            "/api/v1/attendance/daily?date=2026-02-30",
            422,
            "The date field must be a valid date in YYYY-MM-DD format",
        ),
        (
            "/api/v1/attendance/daily?date=10-02-2026",
            422,
            "The date field must be a valid date in YYYY-MM-DD format",
        ),
        (
            "/api/v1/attendance/range?end=2026-02-01",
            422,
            "The start field is required",
        ),
        (
            "/api/v1/attendance/range?start=2026-02-01",
            422,
            "The end field is required",
        ),
        (
            "/api/v1/attendance/range?start=2026-02-02&end=2026-02-01",
            422,
            "The end field must be a date after or equal to start",
        ),
        (
            "/api/v1/attendance/range?start=2026-02-01&end=2026-03-04",
            422,
            "The date range may not exceed 31 days",
        ),
        (
            "/api/v1/attendance/employee/NOPE",
            404,
            "Employee not found",
        ),
        (
            "/api/v1/attendance/employee/EMP-1042?start=2026-02-10&end=2026-02-01",
            422,
            "The end field must be a date after or equal to start",
        ),
        (
            "/api/v1/attendance/employee/NOPE/today",
            404,
            "Employee not found",
        ),
        (
            "/api/v1/attendance/today/detailed?date=2026-13-01",
            422,
            "The date field must be a valid date in YYYY-MM-DD format",
        ),
    ] {
        gw.get(&t.key, path).await.expect_error(status, message);
    }
}

#[tokio::test]
async fn night_shifts_and_dst_in_berlin() {
    let (stack, gw) = Stack::start().await;
    let t = stack
        .tenant_in(&gw, Plan::Enterprise, "Europe/Berlin")
        .await;
    gw.create_employee(&t.key, "Nina", json!({"employee_code": "N-1"}))
        .await;
    gw.create_employee(&t.key, "Otto", json!({"employee_code": "O-1"}))
        .await;
    import(
        &gw,
        &t,
        json!([
            // 22:00 CEST on the 24th to 06:00 CET on the 25th: the 25-hour day makes it 9 hours.
            {"nip": "N-1", "clock_in": "2026-10-24T22:00:00+02:00", "clock_out": "2026-10-25T06:00:00+01:00",
             "breaks": [{"start": "2026-10-25T02:30:00+02:00", "end": "2026-10-25T02:15:00+01:00"}]},
            // 09:11 local in summer is 07:11Z: late. 09:05 local in winter is 08:05Z: on time.
            {"nip": "O-1", "clock_in": "2026-10-23T07:11:00Z", "clock_out": "2026-10-23T15:00:00Z"},
            {"nip": "O-1", "clock_in": "2026-10-26T08:05:00Z", "clock_out": "2026-10-26T16:05:00Z"},
            // 00:30 local on the 27th is 23:30Z on the 26th: it belongs to the 27th.
            {"nip": "N-1", "clock_in": "2026-10-26T23:30:00Z", "clock_out": "2026-10-27T04:30:00Z"},
            // Spring: 22:00 CET on 28 March to 06:00 CEST on the 29th, the 23-hour day: 7 hours.
            {"nip": "O-1", "clock_in": "2026-03-28T22:00:00+01:00", "clock_out": "2026-03-29T06:00:00+02:00"},
            // 07:55Z on 30 March is 09:55 CEST: late (it would be 08:55, on time, at the winter offset).
            {"nip": "O-1", "clock_in": "2026-03-30T07:55:00Z", "clock_out": "2026-03-30T15:55:00Z"}
        ]),
    )
    .await;
    let res = gw
        .get(&t.key, "/api/v1/attendance/daily?date=2026-03-28")
        .await
        .expect(200);
    assert_eq!(
        res.data(),
        &json!([{"employee_id": res.data()[0]["employee_id"], "employee_name": "Otto", "nip": "O-1",
            "clock_in": "2026-03-28T21:00:00Z", "clock_out": "2026-03-29T04:00:00Z",
            "total_hours": 7.0, "break_minutes": 0, "status": "present", "raw_total_hours": 7.0,
            "auto_break_minutes": 0, "auto_closed": false}])
    );
    let res = gw
        .get(&t.key, "/api/v1/attendance/daily?date=2026-03-30")
        .await
        .expect(200);
    assert_eq!(res.data()[0]["status"], "late");
    // The org-wide view for that date: every active employee, Otto with his 7-hour shift.
    let res = gw
        .get(&t.key, "/api/v1/attendance/today/detailed?date=2026-03-28")
        .await
        .expect(200);
    let views = res.data().as_array().unwrap();
    assert_eq!(views.len(), 2);
    let otto = views.iter().find(|v| v["employee_code"] == "O-1").unwrap();
    let nina = views.iter().find(|v| v["employee_code"] == "N-1").unwrap();
    assert_eq!(otto["date"], "2026-03-28");
    assert_eq!(otto["current_status"], "clocked_out");
    assert_eq!(otto["work_sessions"][0]["duration_minutes"], 420);
    assert_eq!(otto["summary"]["net_work_hours"], 7.0);
    assert_eq!(nina["current_status"], "not_clocked_in");
    assert_eq!(nina["work_sessions"], json!([]));
    let res = gw
        .get(&t.key, "/api/v1/attendance/daily?date=2026-10-24")
        .await
        .expect(200);
    // The break ran from 02:30 CEST (00:30Z) to 02:15 CET (01:15Z): 45 minutes.
    assert_eq!(
        res.data(),
        &json!([{"employee_id": res.data()[0]["employee_id"], "employee_name": "Nina", "nip": "N-1",
            "clock_in": "2026-10-24T20:00:00Z", "clock_out": "2026-10-25T05:00:00Z",
            "total_hours": 8.25, "break_minutes": 45, "status": "present",
            "raw_total_hours": 8.25, "auto_break_minutes": 0, "auto_closed": false}])
    );
    let res = gw
        .get(&t.key, "/api/v1/attendance/daily?date=2026-10-25")
        .await
        .expect(200);
    assert_eq!(res.data(), &json!([]), "the shift belongs to the 24th");
    let res = gw
        .get(&t.key, "/api/v1/attendance/daily?date=2026-10-23")
        .await
        .expect(200);
    assert_eq!(res.data()[0]["status"], "late");
    let res = gw
        .get(&t.key, "/api/v1/attendance/daily?date=2026-10-26")
        .await
        .expect(200);
    assert_eq!(res.data().as_array().unwrap().len(), 1);
    assert_eq!(res.data()[0]["nip"], "O-1");
    assert_eq!(res.data()[0]["status"], "present");
    let res = gw
        .get(&t.key, "/api/v1/attendance/daily?date=2026-10-27")
        .await
        .expect(200);
    assert_eq!(res.data()[0]["nip"], "N-1");
    assert_eq!(res.data()[0]["total_hours"], 5.0);

    let res = gw
        .get(
            &t.key,
            "/api/v1/attendance/employee/N-1/today?date=2026-10-24",
        )
        .await
        .expect(200);
    let d = res.data();
    assert_eq!(d["date"], "2026-10-24");
    assert_eq!(d["current_status"], "clocked_out");
    assert_eq!(d["work_sessions"][0]["duration_minutes"], 540);
    assert_eq!(
        d["break_sessions"],
        json!([{"attendance_id": d["work_sessions"][0]["attendance_id"],
            "start": "2026-10-25T00:30:00Z", "end": "2026-10-25T01:15:00Z", "duration_minutes": 45}])
    );
    assert_eq!(
        d["summary"],
        json!({"first_clock_in": "2026-10-24T20:00:00Z", "last_clock_out": "2026-10-25T05:00:00Z",
            "total_work_minutes": 540, "total_break_minutes": 45, "net_work_hours": 8.25,
            "raw_net_work_hours": 8.25, "auto_break_minutes": 0})
    );
    let res = gw
        .get(
            &t.key,
            "/api/v1/attendance/employee/N-1/today?date=2026-10-25",
        )
        .await
        .expect(200);
    assert_eq!(res.data()["current_status"], "not_clocked_in");
    assert_eq!(res.data()["work_sessions"], json!([]));
    assert_eq!(res.data()["summary"]["net_work_hours"], 0.0);
}

#[tokio::test]
async fn night_shifts_across_both_dst_changes_in_new_york() {
    let (stack, gw) = Stack::start().await;
    let t = stack
        .tenant_in(&gw, Plan::Enterprise, "America/New_York")
        .await;
    gw.create_employee(&t.key, "Nora", json!({"employee_code": "N-1"}))
        .await;
    import(
        &gw,
        &t,
        json!([
            // 22:00 EST on 7 March to 06:00 EDT on 8 March: the 23-hour day makes it 7 hours.
            {"nip": "N-1", "clock_in": "2026-03-07T22:00:00-05:00", "clock_out": "2026-03-08T06:00:00-04:00"},
            // 22:00 EDT on 31 October to 06:00 EST on 1 November: 9 hours.
            {"nip": "N-1", "clock_in": "2026-10-31T22:00:00-04:00", "clock_out": "2026-11-01T06:00:00-05:00"},
            // 23:30 EST on 1 November is 04:30Z on the 2nd: it belongs to the 1st.
            {"nip": "N-1", "clock_in": "2026-11-02T04:30:00Z", "clock_out": "2026-11-02T06:00:00Z"}
        ]),
    )
    .await;
    let day = |date: &'static str| {
        let (gw, key) = (gw.clone(), t.key.clone());
        async move {
            gw.get(&key, &format!("/api/v1/attendance/daily?date={date}"))
                .await
                .expect(200)
                .data()
                .clone()
        }
    };
    let d = day("2026-03-07").await;
    assert_eq!(d[0]["clock_in"], "2026-03-08T03:00:00Z");
    assert_eq!(d[0]["clock_out"], "2026-03-08T10:00:00Z");
    assert_eq!(d[0]["total_hours"], 7.0);
    assert_eq!(day("2026-03-08").await, json!([]));
    let d = day("2026-10-31").await;
    assert_eq!(d[0]["total_hours"], 9.0);
    let d = day("2026-11-01").await;
    assert_eq!(d[0]["clock_in"], "2026-11-02T04:30:00Z");
    assert_eq!(d[0]["total_hours"], 1.5);
    let res = gw
        .get(
            &t.key,
            "/api/v1/attendance/range?start=2026-10-31&end=2026-11-02",
        )
        .await
        .expect(200);
    let dates: Vec<&str> = res
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["date"].as_str().unwrap())
        .collect();
    assert_eq!(dates, ["2026-10-31", "2026-11-01"]);
}

#[tokio::test]
async fn without_a_date_the_today_views_show_the_current_shift() {
    let (stack, gw) = Stack::start().await;
    let zone = "Asia/Tokyo";
    let tz: chrono_tz::Tz = zone.parse().unwrap();
    let t = stack.tenant_in(&gw, Plan::Enterprise, zone).await;
    gw.create_employee(&t.key, "Night", json!({"employee_code": "N-1"}))
        .await;
    gw.create_employee(&t.key, "Day", json!({"employee_code": "D-1"}))
        .await;
    gw.create_employee(&t.key, "Gone", json!({"employee_code": "G-1"}))
        .await;
    gw.patch(
        &t.key,
        "/api/v1/employees/G-1/status",
        &json!({"status": "inactive"}),
    )
    .await
    .expect(200);
    // A shift begun yesterday evening is still open: longer than the default 16 hours allow.
    gw.patch(
        &t.key,
        "/api/v1/organization",
        &json!({"max_shift_hours": 48}),
    )
    .await
    .expect(200);
    let today = now().with_timezone(&tz).date_naive();
    let yesterday = today - Duration::days(1);
    let started = tz
        .from_local_datetime(&yesterday.and_hms_opt(22, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    gw.post(
        &t.key,
        "/api/v1/attendance/clock-in",
        &json!({"nip": "N-1", "timestamp": ts(started)}),
    )
    .await
    .expect(200);

    let res = gw
        .get(&t.key, "/api/v1/attendance/employee/N-1/today")
        .await
        .expect(200);
    let d = res.data();
    assert_eq!(d["date"], yesterday.to_string());
    assert_eq!(d["current_status"], "working");
    assert_eq!(d["work_sessions"][0]["clock_in"], ts(started));
    assert_eq!(d["work_sessions"][0]["clock_out"], Value::Null);
    assert_eq!(d["summary"]["last_clock_out"], Value::Null);
    let worked = (now() - started).num_minutes();
    let shown = d["summary"]["total_work_minutes"].as_i64().unwrap();
    assert!((shown - worked).abs() <= 1, "{shown} vs {worked}");

    // Today's own date: the shift began yesterday, so nothing today.
    let res = gw
        .get(
            &t.key,
            &format!("/api/v1/attendance/employee/N-1/today?date={today}"),
        )
        .await
        .expect(200);
    assert_eq!(res.data()["current_status"], "not_clocked_in");

    gw.clock(&t.key, "break-start", "N-1").await.expect(200);
    let res = gw
        .get(&t.key, "/api/v1/attendance/today/detailed")
        .await
        .expect(200);
    let all = res.data().as_array().unwrap();
    let codes: Vec<&str> = all
        .iter()
        .map(|d| d["employee_code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["N-1", "D-1"], "active employees only");
    assert_eq!(all[0]["date"], yesterday.to_string());
    assert_eq!(all[0]["current_status"], "on_break");
    assert_eq!(all[0]["break_sessions"][0]["end"], Value::Null);
    assert_eq!(
        keys(&all[1]),
        [
            "break_sessions",
            "current_status",
            "date",
            "employee_code",
            "employee_id",
            "employee_name",
            "summary",
            "timeline",
            "work_sessions"
        ]
    );
    assert_eq!(all[1]["date"], today.to_string());
    assert_eq!(all[1]["current_status"], "not_clocked_in");
    assert_eq!(
        all[1]["summary"],
        json!({"first_clock_in": null, "last_clock_out": null, "total_work_minutes": 0,
            "total_break_minutes": 0, "net_work_hours": 0.0,
            "raw_net_work_hours": 0.0, "auto_break_minutes": 0})
    );
    // The open shift is in yesterday's daily report, counted until now.
    let res = gw
        .get(
            &t.key,
            &format!("/api/v1/attendance/daily?date={yesterday}"),
        )
        .await
        .expect(200);
    assert_eq!(res.data()[0]["clock_out"], Value::Null);
    assert!(res.data()[0]["total_hours"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn one_org_never_sees_or_clocks_another_orgs_attendance() {
    let (stack, gw) = Stack::start().await;
    let a = stack.tenant(&gw, Plan::Enterprise).await;
    let b = stack.tenant(&gw, Plan::Enterprise).await;
    gw.create_employee(&a.key, "Alice", json!({"employee_code": "A-1"}))
        .await;
    gw.clock_in(&a.key, "A-1").await.expect(200);
    let leave = gw
        .post(
            &a.key,
            "/api/v1/leaves",
            &json!({"nip": "A-1", "start_date": "2026-12-01", "end_date": "2026-12-02", "type": "annual"}),
        )
        .await
        .expect(201);
    let today = now().date_naive();
    for path in [
        "/api/v1/attendance/clock-out",
        "/api/v1/attendance/clock-in",
        "/api/v1/attendance/break-start",
    ] {
        gw.post(&b.key, path, &json!({"nip": "A-1"}))
            .await
            .expect_error(404, "Employee not found");
    }
    gw.get(&b.key, "/api/v1/attendance/employee/A-1")
        .await
        .expect_error(404, "Employee not found");
    gw.get(&b.key, "/api/v1/attendance/employee/A-1/today")
        .await
        .expect_error(404, "Employee not found");
    let res = gw
        .get(&b.key, &format!("/api/v1/attendance/daily?date={today}"))
        .await
        .expect(200);
    assert_eq!(res.data(), &json!([]));
    let res = gw
        .get(&b.key, "/api/v1/attendance/today/detailed")
        .await
        .expect(200);
    assert_eq!(res.data(), &json!([]));
    let res = gw
        .get(&b.key, "/api/v1/leaves?month=12&year=2026")
        .await
        .expect(200);
    assert_eq!(res.data(), &json!([]));
    gw.delete(&b.key, &format!("/api/v1/leaves/{}", leave.data()["id"]))
        .await
        .expect_error(404, "Leave not found");
    gw.post(
        &b.key,
        "/api/v1/attendance/import",
        &json!({"records": [{"nip": "A-1", "clock_in": "2026-01-05T09:00:00Z", "clock_out": "2026-01-05T10:00:00Z"}]}),
    )
    .await
    .expect_error(422, "records.0: Employee A-1 not found");
    // A's data is as it was.
    let res = gw
        .get(&a.key, &format!("/api/v1/attendance/daily?date={today}"))
        .await
        .expect(200);
    assert_eq!(res.data()[0]["clock_out"], Value::Null);
    let res = gw
        .get(&a.key, "/api/v1/leaves?month=12&year=2026")
        .await
        .expect(200);
    assert_eq!(res.data().as_array().unwrap().len(), 1);
}

/// 20,000 employees: the daily report is several MiB, beyond NATS's 1 MiB max payload. The
/// employees are written straight into employee-svc's tables (creating 20,000 through the API
/// would spend minutes hashing their passwords); everything else goes through the API.
#[tokio::test]
async fn a_daily_report_for_20000_employees_crosses_the_bus_whole() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let n = 20_000;
    clokio_tests::seed_employees(t.org.id, "B", n, "2026-01-01").await;
    let date = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
    for chunk in 0..4 {
        let records: Vec<Value> = (1..=5000)
            .map(|i| {
                let k = chunk * 5000 + i;
                json!({"nip": format!("B{k:05}"), "clock_in": format!("{date}T09:00:00Z"),
                    "clock_out": format!("{date}T17:00:00Z"),
                    "breaks": [{"start": format!("{date}T12:00:00Z"), "end": format!("{date}T12:30:00Z")}]})
            })
            .collect();
        let res = gw
            .post(
                &t.key,
                "/api/v1/attendance/import",
                &json!({ "records": records }),
            )
            .await
            .expect(201);
        assert_eq!(res.data()["imported"], 5000);
    }
    let res = gw
        .get(&t.key, &format!("/api/v1/attendance/daily?date={date}"))
        .await
        .expect(200);
    assert!(res.text.len() > 3 * 1024 * 1024, "{} bytes", res.text.len());
    let records = res.data().as_array().unwrap();
    assert_eq!(records.len(), n as usize);
    assert!(
        records
            .iter()
            .all(|r| r["total_hours"] == 7.5 && r["break_minutes"] == 30)
    );
    assert_eq!(records[0]["nip"], "B00001");
    assert_eq!(records[n as usize - 1]["nip"], "B20000");
}

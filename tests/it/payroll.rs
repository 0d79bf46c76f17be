//! Payroll rules (SPEC §8): corrections with an audit trail, forgotten clock-outs closed
//! automatically, rounding and automatic break deduction, closed pay periods.

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use clokio_bus::types::Plan;
use clokio_tests::{Gateway, Receiver, Res, Stack, Tenant, json};
use serde_json::Value;

use crate::attendance::{now, ts};
use crate::summary::csv;

/// Every row attendance-svc keeps of the org, and how many events it published of it, as text:
/// what a refused write must leave as it was.
async fn stored(stack: &Stack, t: &Tenant) -> String {
    let db = clokio_tests::db().await;
    let (text,): (Option<String>,) = sqlx::query_as(
        "SELECT concat_ws(' | ', \
            (SELECT string_agg(row_to_json(s)::text, ',' ORDER BY s.id) FROM attendance.sessions s \
             WHERE s.org_id = $1), \
            (SELECT string_agg(row_to_json(b)::text, ',' ORDER BY b.id) FROM attendance.breaks b \
             JOIN attendance.sessions s ON s.id = b.session_id WHERE s.org_id = $1), \
            (SELECT string_agg(row_to_json(c)::text, ',' ORDER BY c.id) FROM attendance.corrections c \
             WHERE c.org_id = $1), \
            (SELECT string_agg(row_to_json(l)::text, ',' ORDER BY l.id) FROM attendance.leaves l \
             WHERE l.org_id = $1), \
            (SELECT string_agg(row_to_json(p)::text, ',' ORDER BY p.month) \
             FROM attendance.closed_periods p WHERE p.org_id = $1))",
    )
    .bind(t.org.id.as_uuid())
    .fetch_one(&db)
    .await
    .unwrap();
    let events = stack.published_events(t.org.id).await;
    format!("{} | {events} events", text.unwrap_or_default())
}

/// `method path` with a JSON body (and an Idempotency-Key).
async fn send(
    gw: &Gateway,
    t: &Tenant,
    method: reqwest::Method,
    path: &str,
    body: &Value,
    key: Option<&str>,
) -> Res {
    let mut req = gw.request(method, Some(&t.key), path).json(body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    gw.send(req).await
}

/// Polls `path` until `done` holds (10 s at most), then returns its data.
async fn until(gw: &Gateway, t: &Tenant, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let res = gw.get(&t.key, path).await.expect(200);
        if done(res.data()) {
            return res.data().clone();
        }
        assert!(
            started.elapsed() < StdDuration::from_secs(40),
            "{path} never got there: {}",
            res.text
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

/// A clock-in of `nip` dated `at` (as an offline kiosk reports it): its session's id.
async fn clock_in_at(gw: &Gateway, t: &Tenant, nip: &str, at: DateTime<Utc>) -> i64 {
    gw.post(
        &t.key,
        "/api/v1/attendance/clock-in",
        &json!({"nip": nip, "timestamp": ts(at)}),
    )
    .await
    .expect(200)
    .data()["attendance_id"]
        .as_i64()
        .unwrap()
}

fn utc(day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(h, m, 0).unwrap())
}

/// The summary's row of `nip` for the month of `day`.
async fn summary_row(
    gw: &Gateway,
    t: &Tenant,
    day: NaiveDate,
    nip: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!(
        "/api/v1/attendance/summary?month={}&year={}",
        day.month(),
        day.year()
    );
    let rows = until(gw, t, &path, |rows| {
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["nip"] == nip && done(r))
    })
    .await;
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["nip"] == nip)
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_correction_changes_the_figures_keeps_its_trail_and_is_announced() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let b = stack.tenant(&gw, Plan::Enterprise).await;
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    gw.create_employee(&t.key, "Ben", json!({"employee_code": "E-2"}))
        .await;
    let receiver = Receiver::start().await;
    gw.webhook(
        &t.key,
        json!({"url": format!("{}/corrections", receiver.url), "events": ["correction"]}),
    )
    .await;
    let mut events = stack
        .events(
            stack
                .bus_config
                .subjects
                .event("attendance", t.org.id, "corrected"),
        )
        .await;
    let key_name = gw.get(&t.key, "/api/v1/api-keys").await.expect(200).data()[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    let day = (now() - Duration::days(2)).date_naive();
    let imported = gw
        .post(
            &t.key,
            "/api/v1/attendance/import",
            &json!({"records": [
                {"nip": "E-1", "clock_in": ts(utc(day, 9, 0)), "clock_out": ts(utc(day, 17, 0)),
                 "breaks": [{"start": ts(utc(day, 12, 0)), "end": ts(utc(day, 12, 30))}]},
                {"nip": "E-1", "clock_in": ts(utc(day, 19, 0)), "clock_out": ts(utc(day, 20, 0))}
            ]}),
        )
        .await
        .expect(201);
    let id = imported.data()["attendance_ids"][0].as_i64().unwrap();
    let later = imported.data()["attendance_ids"][1].as_i64().unwrap();
    let path = format!("/api/v1/attendance/sessions/{id}");
    summary_row(&gw, &t, day, "E-1", |r| r["total_hours"] == 8.5).await;

    // Refusals: each a clear 4xx, and nothing stored changes.
    let before = stored(&stack, &t).await;
    let cases = [
        (
            json!({"clock_out": ts(utc(day, 18, 0))}),
            422,
            "The reason field is required".to_owned(),
        ),
        (
            json!({"reason": "x"}),
            422,
            "The request must change at least one of clock_in, clock_out, breaks or location"
                .to_owned(),
        ),
        (
            json!({"clock_out": ts(utc(day, 8, 0)), "reason": "x"}),
            422,
            "The clock_out field must be after clock_in".to_owned(),
        ),
        (
            json!({"clock_out": ts(now() + Duration::hours(1)), "reason": "x"}),
            422,
            "The clock_out field must not be in the future".to_owned(),
        ),
        (
            json!({"breaks": [{"start": ts(utc(day, 8, 0)), "end": ts(utc(day, 8, 30))}], "reason": "x"}),
            422,
            "A break must lie inside its session".to_owned(),
        ),
        (
            json!({"breaks": [{"start": ts(utc(day, 12, 0)), "end": ts(utc(day, 12, 30))},
                {"start": ts(utc(day, 12, 15)), "end": ts(utc(day, 12, 45))}], "reason": "x"}),
            422,
            "breaks must not overlap".to_owned(),
        ),
        (
            json!({"clock_out": ts(utc(day, 19, 30)), "reason": "x"}),
            409,
            format!("The session would overlap the recorded session {later}"),
        ),
        (
            json!({"location": "Atlantis", "reason": "x"}),
            422,
            "The location Atlantis is not a location of the organization".to_owned(),
        ),
        (
            json!({"clock_out": "yesterday", "reason": "x"}),
            422,
            "The clock_out field must be a valid RFC 3339 date-time (e.g. 2026-02-12T08:55:12Z)"
                .to_owned(),
        ),
        (
            json!({"clock_out": ts(utc(day, 18, 0)), "reason": "r".repeat(501)}),
            422,
            "The reason field must not be greater than 500 characters".to_owned(),
        ),
    ];
    for (body, status, message) in cases {
        let res = send(&gw, &t, reqwest::Method::PATCH, &path, &body, None).await;
        assert_eq!(
            (res.status, res.message()),
            (status, message.as_str()),
            "{body}: {}",
            res.text
        );
    }
    for (who, p) in [
        (&t, "/api/v1/attendance/sessions/999999999".to_owned()),
        (&t, "/api/v1/attendance/sessions/abc".to_owned()),
        (&b, path.clone()),
    ] {
        let res = send(
            &gw,
            who,
            reqwest::Method::PATCH,
            &p,
            &json!({"clock_out": ts(utc(day, 18, 0)), "reason": "x"}),
            None,
        )
        .await;
        res.expect_error(404, "Attendance session not found");
    }
    // An id that names nothing is 404 whatever the body says: the path is read first.
    for (method, body) in [
        (reqwest::Method::PATCH, json!({})),
        (reqwest::Method::PATCH, json!({"reason": 5, "breaks": "x"})),
        (reqwest::Method::DELETE, json!({"reason": 5})),
    ] {
        send(
            &gw,
            &t,
            method,
            "/api/v1/attendance/sessions/abc",
            &body,
            None,
        )
        .await
        .expect_error(404, "Attendance session not found");
    }
    gw.get(&b.key, &format!("{path}/history"))
        .await
        .expect_error(404, "Attendance session not found");
    assert_eq!(stored(&stack, &t).await, before, "refusals changed nothing");

    // A correction: a later clock-out and a longer break, retried once with the same key.
    let fix = json!({
        "clock_out": ts(utc(day, 18, 15)),
        "breaks": [{"start": ts(utc(day, 12, 0)), "end": ts(utc(day, 12, 45))}],
        "reason": "Forgot to punch out after the late delivery"
    });
    let res = send(&gw, &t, reqwest::Method::PATCH, &path, &fix, Some("fix-1")).await;
    let res = res.expect(200);
    assert_eq!(res.message(), "Attendance session corrected successfully");
    let again = send(&gw, &t, reqwest::Method::PATCH, &path, &fix, Some("fix-1"))
        .await
        .expect(200);
    assert_eq!(again.text, res.text, "the retry replays the first answer");
    let s = res.data();
    assert_eq!(s["attendance_id"], id);
    assert_eq!(s["nip"], "E-1");
    assert_eq!(s["clock_in"], ts(utc(day, 9, 0)));
    assert_eq!(s["clock_out"], ts(utc(day, 18, 15)));
    assert_eq!(s["work_date"], day.to_string());
    assert_eq!(s["break_minutes"], 45);
    // 09:00–18:15 less 45 minutes.
    assert_eq!(s["total_hours"], 8.5);
    assert_eq!(s["revision"], 2);
    assert_eq!(s["auto_closed"], false);

    let shown = gw.get(&t.key, &path).await.expect(200);
    assert_eq!(shown.data(), res.data());
    gw.get(&b.key, &path)
        .await
        .expect_error(404, "Attendance session not found");

    // The audit trail: who, when, why, before and after.
    let history = gw.get(&t.key, &format!("{path}/history")).await.expect(200);
    let h = history.data().as_array().unwrap();
    assert_eq!(h.len(), 1, "the retry added nothing: {}", history.text);
    assert_eq!(h[0]["action"], "updated");
    assert_eq!(
        h[0]["by"],
        json!({"kind": "api_key", "id": h[0]["by"]["id"], "name": key_name})
    );
    assert_eq!(
        h[0]["reason"],
        "Forgot to punch out after the late delivery"
    );
    assert_eq!(h[0]["before"]["clock_out"], ts(utc(day, 17, 0)));
    assert_eq!(
        h[0]["before"]["breaks"],
        json!([{"start": ts(utc(day, 12, 0)), "end": ts(utc(day, 12, 30))}])
    );
    assert_eq!(h[0]["after"]["clock_out"], ts(utc(day, 18, 15)));
    assert!(h[0]["at"].as_str().is_some());

    // One event on the bus, and the webhook subscribed to corrections hears of it.
    let e = events.next().await;
    assert_eq!(e.body["type"], "attendance.corrected");
    let d = &e.body["data"];
    assert_eq!(d["event"], "correction");
    assert_eq!(d["attendance_id"], id);
    assert_eq!(d["revision"], 2);
    assert_eq!(d["clock_out"], ts(utc(day, 18, 15)));
    assert_eq!(d["break_seconds"], 2700);
    assert_eq!(d["correction"]["action"], "updated");
    assert_eq!(d["correction"]["by"]["name"], key_name);
    assert!(events.none_within(StdDuration::from_millis(500)).await);
    receiver.wait_for(1, StdDuration::from_secs(10)).await;
    let got = receiver.received();
    assert_eq!(got[0].json()["type"], "correction");
    assert_eq!(
        got[0].json()["data"]["correction"]["before"]["clock_out"],
        ts(utc(day, 17, 0))
    );

    // Reads show it at once; the summary within a second or so.
    let daily = gw
        .get(&t.key, &format!("/api/v1/attendance/daily?date={day}"))
        .await
        .expect(200);
    // 8.5 h and the evening's hour.
    assert_eq!(daily.data()[0]["total_hours"], 9.5);
    let detail = gw
        .get(
            &t.key,
            &format!("/api/v1/attendance/employee/E-1/today?date={day}"),
        )
        .await
        .expect(200);
    assert_eq!(detail.data()["summary"]["net_work_hours"], 9.5);
    assert_eq!(
        detail.data()["break_sessions"][0]["end"],
        ts(utc(day, 12, 45))
    );
    summary_row(&gw, &t, day, "E-1", |r| r["total_hours"] == 9.5).await;

    // Delete the evening's wrong session (reason as a query parameter).
    let gone_path = format!("/api/v1/attendance/sessions/{later}");
    send(
        &gw,
        &t,
        reqwest::Method::DELETE,
        &gone_path,
        &json!({}),
        None,
    )
    .await
    .expect_error(422, "The reason field is required");
    let gone = gw
        .delete(
            &t.key,
            &format!("{gone_path}?reason=Punched%20on%20the%20wrong%20badge"),
        )
        .await
        .expect(200);
    assert_eq!(gone.message(), "Attendance session deleted successfully");
    assert_eq!(gone.data()["clock_out"], ts(utc(day, 20, 0)));
    gw.delete(&t.key, &format!("{gone_path}?reason=again"))
        .await
        .expect_error(404, "Attendance session not found");
    let h = gw
        .get(&t.key, &format!("{gone_path}/history"))
        .await
        .expect(200);
    assert_eq!(h.data()[0]["action"], "deleted");
    assert_eq!(h.data()[0]["reason"], "Punched on the wrong badge");
    assert_eq!(h.data()[0]["after"], Value::Null);
    let e = events.next().await;
    assert_eq!(e.body["data"]["deleted"], true);
    assert_eq!(e.body["data"]["attendance_id"], later);
    summary_row(&gw, &t, day, "E-1", |r| r["total_hours"] == 8.5).await;

    // Add a session that was never punched; one on top of it is refused.
    let next_day = day + Duration::days(1);
    let create = json!({"nip": "E-2", "clock_in": ts(utc(next_day, 8, 0)),
        "clock_out": ts(utc(next_day, 12, 0)), "reason": "Paper timesheet"});
    let made = gw
        .post(&t.key, "/api/v1/attendance/sessions", &create)
        .await
        .expect(201);
    assert_eq!(made.message(), "Attendance session created successfully");
    assert_eq!(made.data()["total_hours"], 4.0);
    let made_id = made.data()["attendance_id"].as_i64().unwrap();
    let before = stored(&stack, &t).await;
    gw.post(
        &t.key,
        "/api/v1/attendance/sessions",
        &json!({"nip": "E-2", "clock_in": ts(utc(next_day, 11, 0)),
            "clock_out": ts(utc(next_day, 13, 0)), "reason": "Twice"}),
    )
    .await
    .expect_error(
        409,
        &format!("The session would overlap the recorded session {made_id}"),
    );
    gw.post(
        &t.key,
        "/api/v1/attendance/sessions",
        &json!({"nip": "NOBODY", "clock_in": ts(utc(next_day, 11, 0)),
            "clock_out": ts(utc(next_day, 13, 0)), "reason": "x"}),
    )
    .await
    .expect_error(422, "Employee NOBODY not found");
    assert_eq!(stored(&stack, &t).await, before);
    let h = gw
        .get(
            &t.key,
            &format!("/api/v1/attendance/sessions/{made_id}/history"),
        )
        .await
        .expect(200);
    assert_eq!(h.data()[0]["action"], "created");
    assert_eq!(h.data()[0]["before"], Value::Null);

    // A missing clock-out set by a correction: the employee can clock in again.
    let open_id = clock_in_at(&gw, &t, "E-2", now() - Duration::minutes(90)).await;
    gw.clock_in(&t.key, "E-2")
        .await
        .expect_error(409, "Employee is already clocked in");
    // A break added to the open session: an offline punch dated inside it is refused, as any
    // punch before the employee's last event.
    let (b_start, b_end) = (now() - Duration::minutes(60), now() - Duration::minutes(45));
    send(
        &gw,
        &t,
        reqwest::Method::PATCH,
        &format!("/api/v1/attendance/sessions/{open_id}"),
        &json!({"breaks": [{"start": ts(b_start), "end": ts(b_end)}], "reason": "Lunch not punched"}),
        None,
    )
    .await
    .expect(200);
    gw.post(
        &t.key,
        "/api/v1/attendance/clock-out",
        &json!({"nip": "E-2", "timestamp": ts(b_start + Duration::minutes(5))}),
    )
    .await
    .expect_error(
        422,
        &format!(
            "The timestamp must not be earlier than the employee's last attendance event ({})",
            ts(b_end)
        ),
    );
    send(
        &gw,
        &t,
        reqwest::Method::PATCH,
        &format!("/api/v1/attendance/sessions/{open_id}"),
        &json!({"clock_out": ts(now() - Duration::minutes(30)), "reason": "Left without punching"}),
        None,
    )
    .await
    .expect(200);
    gw.clock_in(&t.key, "E-2").await.expect(200);

    // Where shifts may run 72 hours, a 60-hour open session can still be corrected.
    gw.patch(
        &t.key,
        "/api/v1/organization",
        &json!({"max_shift_hours": 72}),
    )
    .await
    .expect(200);
    gw.create_employee(&t.key, "Cy", json!({"employee_code": "E-3"}))
        .await;
    let long_id = clock_in_at(&gw, &t, "E-3", now() - Duration::hours(60)).await;
    let break_at = now() - Duration::hours(50);
    send(
        &gw,
        &t,
        reqwest::Method::PATCH,
        &format!("/api/v1/attendance/sessions/{long_id}"),
        &json!({"breaks": [{"start": ts(break_at), "end": ts(break_at + Duration::hours(1))}],
            "reason": "Rest period"}),
        None,
    )
    .await
    .expect(200);
    send(
        &gw,
        &t,
        reqwest::Method::PATCH,
        &format!("/api/v1/attendance/sessions/{long_id}"),
        &json!({"clock_in": ts(now() - Duration::hours(73)), "reason": "Too long"}),
        None,
    )
    .await
    .expect_error(422, "A session may not be longer than 72 hours");
}

#[tokio::test]
async fn a_forgotten_clock_out_is_closed_at_the_limit_once() {
    let (mut stack, gw) = Stack::start().await;
    // A second replica: both sweep, neither closes a session twice.
    stack.start_attendance_svc().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    for (value, status) in [(0, 422), (73, 422)] {
        let res = gw
            .patch(
                &t.key,
                "/api/v1/organization",
                &json!({"max_shift_hours": value}),
            )
            .await;
        res.expect_error(status, "The max_shift_hours field must be between 1 and 72");
    }
    let res = gw
        .patch(
            &t.key,
            "/api/v1/organization",
            &json!({"max_shift_hours": 1}),
        )
        .await
        .expect(200);
    assert_eq!(res.data()["settings"]["max_shift_hours"], 1);
    for code in ["E-1", "E-2", "E-3"] {
        gw.create_employee(&t.key, code, json!({"employee_code": code}))
            .await;
    }
    // E-3's forgotten session is closed by a keyed punch that is then refused (nothing is left
    // to end a break of): the close stands, though the punch's own work is undone.
    let third_id = clock_in_at(&gw, &t, "E-3", now() - Duration::hours(2)).await;
    send(
        &gw,
        &t,
        reqwest::Method::POST,
        "/api/v1/attendance/break-end",
        &json!({"nip": "E-3"}),
        Some("end-1"),
    )
    .await
    .expect_error(409, "Employee is not on a break");
    let s = gw
        .get(&t.key, &format!("/api/v1/attendance/sessions/{third_id}"))
        .await
        .expect(200);
    assert_eq!(s.data()["auto_closed"], true, "{}", s.text);
    assert!(s.data()["clock_out"].is_string(), "{}", s.text);
    // E-1 clocked in three hours ago and forgot to clock out: the next clock-in is accepted.
    let started = now() - Duration::hours(3);
    let first_id = clock_in_at(&gw, &t, "E-1", started).await;
    gw.clock_in(&t.key, "E-1").await.expect(200);
    // E-2 clocked in two hours ago and does nothing more: a sweep closes the session.
    let second_started = now() - Duration::hours(2);
    let second_id = clock_in_at(&gw, &t, "E-2", second_started).await;
    let day = second_started.date_naive();
    let detail = until(
        &gw,
        &t,
        &format!("/api/v1/attendance/employee/E-2/today?date={day}"),
        |d| d["work_sessions"][0]["auto_closed"] == true,
    )
    .await;
    assert_eq!(
        detail["work_sessions"][0]["clock_out"],
        ts(second_started + Duration::hours(1))
    );
    assert_eq!(detail["current_status"], "clocked_out");

    let detail = gw
        .get(
            &t.key,
            &format!(
                "/api/v1/attendance/employee/E-1/today?date={}",
                started.date_naive()
            ),
        )
        .await
        .expect(200);
    let s = detail.data()["work_sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["attendance_id"] == first_id)
        .unwrap()
        .clone();
    assert_eq!(s["clock_out"], ts(started + Duration::hours(1)));
    assert_eq!(s["auto_closed"], true);

    // One clock-out event each, saying so; one audit entry each, by the system. (The stream is
    // read from its start; a consumer made earlier would have expired while the sweep ran.)
    let mut outs = stack
        .events(
            stack
                .bus_config
                .subjects
                .event("attendance", t.org.id, "clock-out"),
        )
        .await;
    let mut closed = Vec::new();
    for _ in 0..3 {
        let e = outs.next().await;
        assert_eq!(e.body["data"]["auto_closed"], true, "{}", e.body);
        closed.push(e.body["data"]["attendance_id"].as_i64().unwrap());
    }
    closed.sort_unstable();
    let mut expected = [first_id, second_id, third_id];
    expected.sort_unstable();
    assert_eq!(closed, expected);
    for id in expected {
        let h = gw
            .get(&t.key, &format!("/api/v1/attendance/sessions/{id}/history"))
            .await
            .expect(200);
        let h = h.data().as_array().unwrap().clone();
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[0]["action"], "auto_closed");
        assert_eq!(
            h[0]["by"],
            json!({"kind": "system", "id": null, "name": "Clokio"})
        );
        assert_eq!(h[0]["reason"], "Still open after max_shift_hours (1 h)");
    }
    // The daily record and the summary flag it for payroll.
    let daily = gw
        .get(&t.key, &format!("/api/v1/attendance/daily?date={day}"))
        .await
        .expect(200);
    let e2 = daily
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["nip"] == "E-2")
        .unwrap()
        .clone();
    assert_eq!(e2["auto_closed"], true);
    assert_eq!(e2["total_hours"], 1.0);
    summary_row(&gw, &t, day, "E-2", |r| r["auto_closed_count"] == 1).await;
    // Both replicas swept at least once more by now: still one close each.
    assert!(outs.none_within(StdDuration::from_secs(21)).await);
}

#[tokio::test]
async fn rounding_and_break_deduction_known_answers() {
    let (stack, gw) = Stack::start().await;
    let t = stack
        .tenant_in(&gw, Plan::Enterprise, "Europe/Berlin")
        .await;
    gw.create_employee(
        &t.key,
        "Greta",
        json!({"employee_code": "G-1", "hire_date": "2020-01-01"}),
    )
    .await;
    // Berlin times (CET, UTC+1, until the night of 28-29 March 2026).
    let cet = |d: &str, h: u32, m: u32| {
        ts(Utc.from_utc_datetime(
            &d.parse::<NaiveDate>()
                .unwrap()
                .and_hms_opt(h, m, 0)
                .unwrap(),
        ) - Duration::hours(1))
    };
    let session = |d: &str, from: (u32, u32), to: (u32, u32)| json!({"nip": "G-1", "clock_in": cet(d, from.0, from.1), "clock_out": cet(d, to.0, to.1)});
    let mut c = session("2026-03-04", (7, 43), (16, 44));
    c["breaks"] = json!([{"start": cet("2026-03-04", 12, 0), "end": cet("2026-03-04", 12, 30)}]);
    gw.post(
        &t.key,
        "/api/v1/attendance/import",
        &json!({"records": [
            // solidtime#994: 1:30 and 1:45 are already on a 15-minute step; 1:48 is not.
            session("2026-03-02", (13, 0), (14, 30)),
            session("2026-03-03", (12, 0), (13, 48)),
            // cpcMomentum/worktime#403: 9 h 01 present, 30 minutes' break: 8 h 31 of work.
            c,
            // 9 h 30 without a break: 45 minutes required.
            session("2026-03-05", (8, 0), (17, 30)),
            // 10 h in two sessions an hour apart: the gap is the break.
            session("2026-03-06", (7, 0), (12, 0)),
            session("2026-03-06", (13, 0), (18, 0)),
            // 6 h 10 without a break.
            session("2026-03-09", (8, 0), (14, 10)),
            // The night the clocks go forward: 22:00 CET to 06:30 CEST is 7 h 30.
            {"nip": "G-1", "clock_in": "2026-03-28T21:00:00Z", "clock_out": "2026-03-29T04:30:00Z"}
        ]}),
    )
    .await
    .expect(201);

    let check = |want: Vec<(&'static str, f64, f64, i64)>| {
        let (gw, key) = (gw.clone(), t.key.clone());
        async move {
            let res = gw
                .get(
                    &key,
                    "/api/v1/attendance/employee/G-1?start=2026-03-01&end=2026-03-31",
                )
                .await
                .expect(200);
            let got: Vec<(String, f64, f64, i64)> = res
                .data()
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["date"].as_str().unwrap().to_owned(),
                        r["total_hours"].as_f64().unwrap(),
                        r["raw_total_hours"].as_f64().unwrap(),
                        r["auto_break_minutes"].as_i64().unwrap(),
                    )
                })
                .collect();
            let want: Vec<(String, f64, f64, i64)> = want
                .into_iter()
                .map(|(d, total, raw, auto)| (d.to_owned(), total, raw, auto))
                .collect();
            assert_eq!(got, want);
        }
    };
    // Off by default: the hours as punched.
    check(vec![
        ("2026-03-02", 1.5, 1.5, 0),
        ("2026-03-03", 1.8, 1.8, 0),
        ("2026-03-04", 8.52, 8.52, 0),
        ("2026-03-05", 9.5, 9.5, 0),
        ("2026-03-06", 10.0, 10.0, 0),
        ("2026-03-09", 6.17, 6.17, 0),
        ("2026-03-28", 7.5, 7.5, 0),
    ])
    .await;

    // ArbZG §4: more than 6 h needs 30 minutes, more than 9 h needs 45; only what was not taken
    // is deducted.
    let res = gw
        .patch(
            &t.key,
            "/api/v1/organization",
            &json!({"break_rules": [
                {"after_hours": 9, "minimum_break_minutes": 45},
                {"after_hours": 6, "minimum_break_minutes": 30}
            ]}),
        )
        .await
        .expect(200);
    assert_eq!(
        res.data()["settings"]["break_rules"],
        json!([{"after_hours": 6.0, "minimum_break_minutes": 30},
            {"after_hours": 9.0, "minimum_break_minutes": 45}])
    );
    check(vec![
        ("2026-03-02", 1.5, 1.5, 0),
        ("2026-03-03", 1.8, 1.8, 0),
        ("2026-03-04", 8.52, 8.52, 0),
        ("2026-03-05", 8.75, 9.5, 45),
        ("2026-03-06", 10.0, 10.0, 0),
        ("2026-03-09", 5.67, 6.17, 30),
        ("2026-03-28", 7.0, 7.5, 30),
    ])
    .await;

    // Rounding up to 15 minutes, per session, then the deduction.
    gw.patch(
        &t.key,
        "/api/v1/organization",
        &json!({"rounding": {"minutes": 15, "mode": "up"}}),
    )
    .await
    .expect(200);
    check(vec![
        ("2026-03-02", 1.5, 1.5, 0),
        ("2026-03-03", 2.0, 1.8, 0),
        ("2026-03-04", 8.75, 8.52, 0),
        ("2026-03-05", 8.75, 9.5, 45),
        ("2026-03-06", 10.0, 10.0, 0),
        ("2026-03-09", 5.75, 6.17, 30),
        ("2026-03-28", 7.0, 7.5, 30),
    ])
    .await;
    // The detailed view shows each session raw and rounded.
    let d = gw
        .get(
            &t.key,
            "/api/v1/attendance/employee/G-1/today?date=2026-03-03",
        )
        .await
        .expect(200);
    assert_eq!(d.data()["work_sessions"][0]["worked_minutes"], 108);
    assert_eq!(d.data()["work_sessions"][0]["rounded_minutes"], 120);
    assert_eq!(d.data()["summary"]["net_work_hours"], 2.0);
    assert_eq!(d.data()["summary"]["raw_net_work_hours"], 1.8);
    // The month, for payroll: the same figures (overtime from what is paid).
    let row = summary_row(&gw, &t, "2026-03-01".parse().unwrap(), "G-1", |r| {
        r["total_hours"] == 43.75
    })
    .await;
    assert_eq!(row["raw_total_hours"], 44.98);
    assert_eq!(row["auto_break_minutes"], 105);
    // 0.75 + 0.75 + 2.0 over 8 h on work days, and all of Saturday's 7.0.
    assert_eq!(row["overtime_hours"], 10.5);
    assert_eq!(row["days_present"], 7);

    // Nearest 6 minutes (a tenth of an hour), rules off.
    gw.patch(
        &t.key,
        "/api/v1/organization",
        &json!({"rounding": {"minutes": 6, "mode": "nearest"}, "break_rules": []}),
    )
    .await
    .expect(200);
    check(vec![
        ("2026-03-02", 1.5, 1.5, 0),
        ("2026-03-03", 1.8, 1.8, 0),
        // 8 h 31 is a minute past a step: down to 8 h 30.
        ("2026-03-04", 8.5, 8.52, 0),
        ("2026-03-05", 9.5, 9.5, 0),
        ("2026-03-06", 10.0, 10.0, 0),
        // 6 h 10 is 4 minutes past a step: up to 6 h 12.
        ("2026-03-09", 6.2, 6.17, 0),
        ("2026-03-28", 7.5, 7.5, 0),
    ])
    .await;

    // Turned off again with null; bad settings are refused and change nothing.
    for (body, message) in [
        (
            json!({"rounding": {"minutes": 7, "mode": "up"}}),
            "The rounding.minutes field must be one of: 1, 5, 6, 10, 15, 30",
        ),
        (
            json!({"rounding": {"minutes": 15, "mode": "sideways"}}),
            "The rounding.mode field must be one of: nearest, up, down",
        ),
        (
            json!({"rounding": 15}),
            "The rounding field must be an object or null",
        ),
        (
            json!({"break_rules": [{"after_hours": 0, "minimum_break_minutes": 30}]}),
            "The break_rules.0.after_hours field must be greater than 0 and at most 24",
        ),
        (
            json!({"break_rules": [{"after_hours": 6}]}),
            "The break_rules.0.minimum_break_minutes field is required",
        ),
    ] {
        gw.patch(&t.key, "/api/v1/organization", &body)
            .await
            .expect_error(422, message);
    }
    let res = gw
        .patch(&t.key, "/api/v1/organization", &json!({"rounding": null}))
        .await
        .expect(200);
    assert_eq!(res.data()["settings"]["rounding"], Value::Null);
}

/// The first day of the month before the current one (UTC).
fn previous_month() -> NaiveDate {
    let first = Utc::now().date_naive().with_day(1).unwrap();
    (first - Duration::days(1)).with_day(1).unwrap()
}

#[tokio::test]
async fn a_closed_period_refuses_writes_and_its_summary_stays_byte_for_byte() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    gw.patch(
        &t.key,
        "/api/v1/organization",
        &json!({"offline_backdate_hours": 720}),
    )
    .await
    .expect(200);
    for (name, code) in [("Ann", "E-1"), ("Ben", "E-2")] {
        gw.create_employee(
            &t.key,
            name,
            json!({"employee_code": code, "hire_date": "2020-01-01"}),
        )
        .await;
    }
    let first = previous_month();
    let name = first.format("%Y-%m").to_string();
    let last = (first + Duration::days(40)).with_day(1).unwrap() - Duration::days(1);
    let d = first + Duration::days(2);
    let imported = gw
        .post(
            &t.key,
            "/api/v1/attendance/import",
            &json!({"records": [
                {"nip": "E-1", "clock_in": ts(utc(d, 8, 0)), "clock_out": ts(utc(d, 16, 0))},
                {"nip": "E-1", "clock_in": ts(utc(d + Duration::days(1), 8, 0)),
                 "clock_out": ts(utc(d + Duration::days(1), 17, 0))}
            ]}),
        )
        .await
        .expect(201);
    let id = imported.data()["attendance_ids"][0].as_i64().unwrap();
    let leave = gw
        .post(
            &t.key,
            "/api/v1/leaves",
            &json!({"nip": "E-2", "start_date": d.to_string(), "end_date": d.to_string(), "type": "sick"}),
        )
        .await
        .expect(201)
        .data()["id"]
        .clone();
    let month_query = format!("month={}&year={}", first.month(), first.year());
    summary_row(&gw, &t, first, "E-1", |r| r["total_hours"] == 17.0).await;

    // A kiosk key may not close a month; the month must be a month, and over.
    let kiosk = gw
        .post(
            &t.key,
            "/api/v1/api-keys",
            &json!({"name": "Front door", "preset": "kiosk"}),
        )
        .await
        .expect(201)
        .data()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    gw.post(&kiosk, &format!("/api/v1/periods/{name}/close"), &json!({}))
        .await
        .expect_error(403, "This API key does not have the settings:manage scope");
    gw.post(&t.key, "/api/v1/periods/2026-13/close", &json!({}))
        .await
        .expect_error(422, "The period must be a month in YYYY-MM format");
    let this_month = Utc::now().format("%Y-%m").to_string();
    gw.post(
        &t.key,
        &format!("/api/v1/periods/{this_month}/close"),
        &json!({}),
    )
    .await
    .expect_error(422, &format!("The period {this_month} has not ended yet"));
    gw.post(
        &t.key,
        &format!("/api/v1/periods/{name}/reopen"),
        &json!({}),
    )
    .await
    .expect_error(409, &format!("The period {name} is not closed"));

    let closed = gw
        .post(&t.key, &format!("/api/v1/periods/{name}/close"), &json!({}))
        .await
        .expect(200);
    assert_eq!(closed.message(), "Period closed successfully");
    assert_eq!(closed.data()["period"], name);
    assert_eq!(closed.data()["closed"], true);
    let closed_at = closed.data()["closed_at"].as_str().unwrap().to_owned();
    let periods = gw.get(&t.key, "/api/v1/periods").await.expect(200);
    assert_eq!(periods.data()[0]["period"], name);
    gw.post(&t.key, &format!("/api/v1/periods/{name}/close"), &json!({}))
        .await
        .expect_error(409, &format!("The period {name} is already closed"));

    // The summary says so, and from now on reads the same, byte for byte.
    summary_row(&gw, &t, first, "E-1", |r| {
        r["closed_at"] == closed_at.as_str()
    })
    .await;
    let summary_path = format!("/api/v1/attendance/summary?{month_query}");
    let frozen = gw.get(&t.key, &summary_path).await.expect(200).text;
    let frozen_csv = csv(&gw, &t, &month_query).await.1;
    assert!(frozen_csv.lines().nth(1).unwrap().ends_with(&closed_at));

    // Writes dated in the month are refused, and change nothing.
    let refused = format!("The period {name} is closed");
    let before = stored(&stack, &t).await;
    let at_month_end = ts(utc(last, 23, 0));
    let writes: Vec<(reqwest::Method, String, Value)> = vec![
        (
            reqwest::Method::POST,
            "/api/v1/attendance/clock-in".to_owned(),
            json!({"nip": "E-2", "timestamp": at_month_end}),
        ),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/attendance/sessions/{id}"),
            json!({"clock_out": ts(utc(d, 17, 0)), "reason": "Late fix"}),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/attendance/sessions/{id}"),
            json!({"reason": "Late fix"}),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/attendance/sessions".to_owned(),
            json!({"nip": "E-2", "clock_in": ts(utc(last, 8, 0)), "clock_out": ts(utc(last, 9, 0)),
                "reason": "Late fix"}),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/attendance/import".to_owned(),
            json!({"records": [{"nip": "E-2", "clock_in": ts(utc(last, 8, 0)),
                "clock_out": ts(utc(last, 9, 0))}]}),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/leaves".to_owned(),
            json!({"nip": "E-1", "start_date": last.to_string(),
                "end_date": (last + Duration::days(3)).to_string(), "type": "annual"}),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/v1/leaves/{leave}"),
            json!({}),
        ),
    ];
    for (method, path, body) in writes {
        let res = send(&gw, &t, method.clone(), &path, &body, None).await;
        assert_eq!(
            (res.status, res.message()),
            (409, refused.as_str()),
            "{method} {path}: {}",
            res.text
        );
    }
    assert_eq!(stored(&stack, &t).await, before);

    // What changes afterwards does not reach the closed month: the rules, the staff.
    gw.patch(
        &t.key,
        "/api/v1/organization",
        &json!({"rounding": {"minutes": 30, "mode": "up"},
            "break_rules": [{"after_hours": 6, "minimum_break_minutes": 60}]}),
    )
    .await
    .expect(200);
    gw.patch(
        &t.key,
        "/api/v1/employees/E-2/status",
        &json!({"status": "inactive"}),
    )
    .await
    .expect(200);
    gw.create_employee(&t.key, "Cleo", json!({"employee_code": "E-3"}))
        .await;
    assert_eq!(gw.get(&t.key, &summary_path).await.expect(200).text, frozen);
    assert_eq!(csv(&gw, &t, &month_query).await.1, frozen_csv);

    // Reopened: writes are accepted and the figures are live again (with today's rules).
    let reopened = gw
        .post(
            &t.key,
            &format!("/api/v1/periods/{name}/reopen"),
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(reopened.data()["closed"], false);
    send(
        &gw,
        &t,
        reqwest::Method::PATCH,
        &format!("/api/v1/attendance/sessions/{id}"),
        &json!({"clock_out": ts(utc(d, 17, 0)), "reason": "Late fix"}),
        None,
    )
    .await
    .expect(200);
    // 9 h less the hour's break the new rule asks for, both days.
    let row = summary_row(&gw, &t, first, "E-1", |r| {
        r["closed_at"].is_null() && r["total_hours"] == 16.0
    })
    .await;
    assert_eq!(row["auto_break_minutes"], 120);

    // Closed again: frozen again, at the new figures.
    let again = gw
        .post(&t.key, &format!("/api/v1/periods/{name}/close"), &json!({}))
        .await
        .expect(200);
    let closed_at = again.data()["closed_at"].as_str().unwrap().to_owned();
    let row = summary_row(&gw, &t, first, "E-1", |r| {
        r["closed_at"] == closed_at.as_str()
    })
    .await;
    assert_eq!(row["total_hours"], 16.0);
}

/// How many of the database's sessions wait for `lock` (`advisory`, `transactionid`, …) in a
/// statement containing `query`.
async fn waiting(db: &sqlx::PgPool, lock: &str, query: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE wait_event_type = 'Lock' AND wait_event = $1 AND strpos(query, $2) > 0",
    )
    .bind(lock)
    .bind(query)
    .fetch_one(db)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_employee_first_written_while_a_close_runs_does_not_slip_into_the_month() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let first = previous_month();
    let name = first.format("%Y-%m").to_string();
    let d = first + Duration::days(3);
    // A close and a reopen first: the month's generation row exists to be held.
    for action in ["close", "reopen"] {
        gw.post(
            &t.key,
            &format!("/api/v1/periods/{name}/{action}"),
            &json!({}),
        )
        .await
        .expect(200);
    }
    // The test holds the generation row: the next close stops there, after it has locked the
    // org's employees, until the test lets go.
    let db = clokio_tests::db().await;
    let mut hold = db.begin().await.unwrap();
    sqlx::query(
        "SELECT 1 FROM attendance.period_generations WHERE org_id = $1 AND month = $2 FOR UPDATE",
    )
    .bind(t.org.id.as_uuid())
    .bind(first)
    .execute(&mut *hold)
    .await
    .unwrap();
    let close = tokio::spawn({
        let (gw, key) = (gw.clone(), t.key.clone());
        let path = format!("/api/v1/periods/{name}/close");
        async move { gw.post(&key, &path, &json!({})).await }
    });
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while waiting(&db, "transactionid", "INSERT INTO period_generations").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the close never reached the held row"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    // An employee the close cannot know of, and their first session, in the month.
    gw.create_employee(
        &t.key,
        "Late",
        json!({"employee_code": "E-9", "hire_date": "2020-01-01"}),
    )
    .await;
    let import = tokio::spawn({
        let (gw, key) = (gw.clone(), t.key.clone());
        let body = json!({"records": [
            {"nip": "E-9", "clock_in": ts(utc(d, 8, 0)), "clock_out": ts(utc(d, 16, 0))}
        ]});
        async move { gw.post(&key, "/api/v1/attendance/import", &body).await }
    });
    // The import waits for the close (or, were it not kept out, would be done).
    while waiting(&db, "advisory", "pg_advisory_xact_lock_shared").await == 0 {
        assert!(
            !import.is_finished(),
            "the import did not wait for the close: {}",
            import.await.unwrap().text
        );
        assert!(Instant::now() < deadline, "the import never waited");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    hold.rollback().await.unwrap();
    close.await.unwrap().expect(200);
    import
        .await
        .unwrap()
        .expect_error(409, &format!("The period {name} is closed"));
    let sessions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attendance.sessions WHERE org_id = $1 AND work_date >= $2",
    )
    .bind(t.org.id.as_uuid())
    .bind(first)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(sessions, 0);
}

/// Each employee's month as the summary reads it (`reporting.employee_months`) against what its
/// sessions say: (values held, values that differ).
async fn month_values(t: &Tenant) -> (i64, i64) {
    let db = clokio_tests::db().await;
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE sessions IS DISTINCT FROM \
            reporting.employee_month_sessions(org_id, month, employee_id)) \
         FROM reporting.employee_months WHERE org_id = $1",
    )
    .bind(t.org.id.as_uuid())
    .fetch_one(&db)
    .await
    .unwrap()
}

/// Two writes of one employee's month, the second waiting on the first's lock of the month's
/// row: the value left holds both sessions. `employee_months_refresh` locks the rows first
/// (`ON CONFLICT DO UPDATE`) so that its value is computed after the other write committed;
/// a refresh that went straight to its `UPDATE` leaves (58 bytes, differs) here, a month
/// without the first write's session.
#[tokio::test]
async fn a_month_written_twice_at_once_holds_both_writes() {
    let (stack, _gw) = Stack::start().await;
    // Three connections: the first write's, the second's, and one to watch them.
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .connect(&stack.database_url)
        .await
        .unwrap();
    let org = uuid::Uuid::new_v4();
    let id = || (uuid::Uuid::new_v4().as_u64_pair().0 >> 1) as i64;
    let insert = |attendance_id: i64, day: u32| {
        let clock_in = utc(NaiveDate::from_ymd_opt(2026, 11, day).unwrap(), 8, 0);
        sqlx::query(
            "INSERT INTO reporting.sessions (attendance_id, org_id, employee_id, work_date, \
                clock_in, clock_out, net_seconds) VALUES ($1, $2, 7, $3, $4, $5, 28800)",
        )
        .bind(attendance_id)
        .bind(org)
        .bind(clock_in.date_naive())
        .bind(clock_in)
        .bind(clock_in + Duration::hours(8))
    };
    // The month's row exists before, so both writes find it and lock it as it is.
    insert(id(), 2).execute(&db).await.unwrap();
    let mut first = db.begin().await.unwrap();
    insert(id(), 3).execute(&mut *first).await.unwrap();
    let (holder,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
        .fetch_one(&mut *first)
        .await
        .unwrap();
    let second = tokio::spawn({
        let db = db.clone();
        let query = insert(id(), 4);
        async move { query.execute(&db).await.unwrap() }
    });
    clokio_tests::until_blocked_by(&db, holder, "the second write").await;
    first.commit().await.unwrap();
    second.await.unwrap();
    let (length, differs): (i32, bool) = sqlx::query_as(
        "SELECT length(sessions), sessions IS DISTINCT FROM \
            reporting.employee_month_sessions(org_id, month, employee_id) \
         FROM reporting.employee_months WHERE org_id = $1 AND employee_id = 7",
    )
    .bind(org)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((length, differs), (3 * 29, false));
    for table in ["sessions", "employee_months"] {
        sqlx::query(&format!("DELETE FROM reporting.{table} WHERE org_id = $1"))
            .bind(org)
            .execute(&db)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_summary_months_follow_their_sessions_across_replicas_moves_and_deletes() {
    let (mut stack, gw) = Stack::start().await;
    // Two replicas project the events, in batches of their own.
    stack.start_reporting_svc().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    for code in ["E-1", "E-2", "E-3"] {
        gw.create_employee(
            &t.key,
            code,
            json!({"employee_code": code, "hire_date": "2020-01-01"}),
        )
        .await;
    }
    let first = previous_month();
    // Concurrent imports of three employees' days in two months.
    let imports = (0..6).map(|i| {
        let (gw, key) = (gw.clone(), t.key.clone());
        let records: Vec<Value> = (0..4)
            .map(|d| {
                let day = first + Duration::days(i * 4 + d);
                json!({"nip": format!("E-{}", i % 3 + 1), "clock_in": ts(utc(day, 8, 0)),
                       "clock_out": ts(utc(day, 16, 0))})
            })
            .collect();
        async move {
            gw.post(
                &key,
                "/api/v1/attendance/import",
                &json!({"records": records}),
            )
            .await
            .expect(201)
            .data()["attendance_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    });
    let ids: Vec<i64> = futures::future::join_all(imports)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(ids.len(), 24);
    // One session moves to the month before, another is deleted.
    let last_month = (first - Duration::days(1)).with_day(1).unwrap() + Duration::days(9);
    let moved = gw
        .get(&t.key, &format!("/api/v1/attendance/sessions/{}", ids[0]))
        .await
        .expect(200);
    let nip = moved.data()["nip"].as_str().unwrap().to_owned();
    send(
        &gw,
        &t,
        reqwest::Method::PATCH,
        &format!("/api/v1/attendance/sessions/{}", ids[0]),
        &json!({"clock_in": ts(utc(last_month, 8, 0)), "clock_out": ts(utc(last_month, 12, 0)),
                "reason": "Dated a month wrong"}),
        None,
    )
    .await
    .expect(200);
    send(
        &gw,
        &t,
        reqwest::Method::DELETE,
        &format!("/api/v1/attendance/sessions/{}", ids[1]),
        &json!({"reason": "Twice"}),
        None,
    )
    .await
    .expect(200);
    // The summaries show it once the projection has it all ...
    let moved_row = summary_row(&gw, &t, last_month, &nip, |r| r["total_hours"] == 4.0).await;
    assert_eq!(moved_row["days_present"], 1);
    until(
        &gw,
        &t,
        &format!(
            "/api/v1/attendance/summary?month={}&year={}",
            first.month(),
            first.year()
        ),
        // Both figures at their final state: the projection catches up event by event, and a
        // suite run once read 22 days present beside 80 of the 176 hours.
        |rows| {
            let sum = |field: &str| -> f64 {
                rows.as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r[field].as_f64().unwrap())
                    .sum()
            };
            sum("days_present") == 22.0 && sum("total_hours") == 22.0 * 8.0
        },
    )
    .await;
    // ... and every month value is what its sessions say.
    let (held, wrong) = month_values(&t).await;
    assert!(held >= 4, "{held} month values");
    assert_eq!(wrong, 0);
    // A rebuild's DELETE by hand empties them with the sessions.
    let db = clokio_tests::db().await;
    sqlx::query("DELETE FROM reporting.sessions WHERE org_id = $1")
        .bind(t.org.id.as_uuid())
        .execute(&db)
        .await
        .unwrap();
    let empty: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM reporting.employee_months WHERE org_id = $1 AND sessions <> ''",
    )
    .bind(t.org.id.as_uuid())
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(empty, 0);
}

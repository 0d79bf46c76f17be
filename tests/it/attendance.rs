//! Clock-in, clock-out and breaks through the public API: the seed's shapes, every rule and
//! refusal, geofencing, offline timestamps, idempotency keys and concurrent clock-ins.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use clokio_bus::types::Plan;
use clokio_tests::{Gateway, Stack, Tenant, json};
use serde_json::Value;

/// Now, in whole seconds.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

pub fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

/// Rows of the attendance schema for one org: (sessions, breaks).
pub async fn stored(t: &Tenant) -> (i64, i64) {
    let db = clokio_tests::db().await;
    let (sessions,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM attendance.sessions WHERE org_id = $1")
            .bind(t.org.id.as_uuid())
            .fetch_one(&db)
            .await
            .unwrap();
    let (breaks,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM attendance.breaks b JOIN attendance.sessions s ON s.id = b.session_id \
         WHERE s.org_id = $1",
    )
    .bind(t.org.id.as_uuid())
    .fetch_one(&db)
    .await
    .unwrap();
    (sessions, breaks)
}

async fn employee(gw: &Gateway, t: &Tenant, code: &str, name: &str) -> Value {
    gw.create_employee(&t.key, name, json!({"employee_code": code}))
        .await
}

#[tokio::test]
async fn a_working_day_exactly_as_the_product_document_shows() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let emp = employee(&gw, &t, "EMP-1042", "Sarah Johnson").await;
    let start = now() - Duration::hours(10);

    let res = gw
        .post(
            &t.key,
            "/api/v1/attendance/clock-in",
            &json!({"nip": "EMP-1042", "latitude": 32.0853, "longitude": 34.7818, "timestamp": ts(start)}),
        )
        .await
        .expect(200);
    assert_eq!(res.message(), "Employee clocked in successfully");
    let d = res.data();
    assert_eq!(
        keys(d),
        ["attendance_id", "clock_in", "employee_name", "location"]
    );
    assert!(d["attendance_id"].as_i64().unwrap() > 0);
    assert_eq!(d["employee_name"], "Sarah Johnson");
    assert_eq!(d["clock_in"], ts(start));
    assert_eq!(d["location"], "Main Office");
    let id = d["attendance_id"].clone();

    let res = gw
        .post(
            &t.key,
            "/api/v1/attendance/break-start",
            &json!({"nip": "EMP-1042", "timestamp": ts(start + Duration::hours(4))}),
        )
        .await
        .expect(200);
    assert_eq!(res.message(), "Break started successfully");
    assert_eq!(
        res.data(),
        &json!({"attendance_id": id, "employee_name": "Sarah Johnson", "break_start": ts(start + Duration::hours(4))})
    );
    let res = gw
        .post(
            &t.key,
            "/api/v1/attendance/break-end",
            &json!({"nip": "EMP-1042", "timestamp": ts(start + Duration::minutes(4 * 60 + 30))}),
        )
        .await
        .expect(200);
    assert_eq!(res.message(), "Break ended successfully");
    assert_eq!(
        res.data(),
        &json!({"attendance_id": id, "employee_name": "Sarah Johnson",
            "break_start": ts(start + Duration::hours(4)),
            "break_end": ts(start + Duration::minutes(4 * 60 + 30)), "duration_minutes": 30})
    );
    // A second break, still running at clock-out: clocking out ends it.
    gw.post(
        &t.key,
        "/api/v1/attendance/break-start",
        &json!({"nip": "EMP-1042", "timestamp": ts(start + Duration::minutes(8 * 60 + 52))}),
    )
    .await
    .expect(200);
    let out = start + Duration::minutes(9 * 60 + 7);
    let res = gw
        .post(
            &t.key,
            "/api/v1/attendance/clock-out",
            &json!({"nip": "EMP-1042", "timestamp": ts(out)}),
        )
        .await
        .expect(200);
    assert_eq!(res.message(), "Employee clocked out successfully");
    // 9 h 7 min with 30 + 15 minutes of break: 8 h 22 min = 8.37 h.
    assert_eq!(
        res.data(),
        &json!({"attendance_id": id, "employee_name": "Sarah Johnson", "clock_in": ts(start),
            "clock_out": ts(out), "location": "Main Office", "total_hours": 8.37, "break_minutes": 45})
    );
    assert_eq!(stored(&t).await, (1, 2));

    // The detailed view of that day.
    let date = start.date_naive();
    let res = gw
        .get(
            &t.key,
            &format!("/api/v1/attendance/employee/EMP-1042/today?date={date}"),
        )
        .await
        .expect(200);
    let d = res.data();
    assert_eq!(d["employee_id"], emp["employee_id"]);
    assert_eq!(d["employee_code"], "EMP-1042");
    assert_eq!(d["date"], date.to_string());
    assert_eq!(d["current_status"], "clocked_out");
    assert_eq!(
        d["work_sessions"],
        json!([{"attendance_id": id, "clock_in": ts(start), "clock_out": ts(out),
            "duration_minutes": 547, "location": "Main Office", "worked_minutes": 502,
            "rounded_minutes": 502, "auto_closed": false}])
    );
    assert_eq!(d["break_sessions"].as_array().unwrap().len(), 2);
    assert_eq!(d["break_sessions"][1]["end"], ts(out));
    assert_eq!(d["break_sessions"][1]["duration_minutes"], 15);
    let events: Vec<&str> = d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "clock-in",
            "break-start",
            "break-end",
            "break-start",
            "break-end",
            "clock-out"
        ]
    );
    assert_eq!(
        d["summary"],
        json!({"first_clock_in": ts(start), "last_clock_out": ts(out), "total_work_minutes": 547,
            "total_break_minutes": 45, "net_work_hours": 8.37,
            "raw_net_work_hours": 8.37, "auto_break_minutes": 0})
    );
}

#[tokio::test]
async fn state_conflicts_are_409_with_the_documented_messages() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    employee(&gw, &t, "E-1", "Ann").await;
    let post = |path: &'static str| {
        let (gw, key) = (gw.clone(), t.key.clone());
        async move {
            gw.post(
                &key,
                &format!("/api/v1/attendance/{path}"),
                &json!({"nip": "E-1"}),
            )
            .await
        }
    };
    post("clock-out")
        .await
        .expect_error(409, "Employee is not clocked in");
    post("break-start")
        .await
        .expect_error(409, "Employee is not clocked in");
    post("break-end")
        .await
        .expect_error(409, "Employee is not on a break");
    post("clock-in").await.expect(200);
    post("clock-in")
        .await
        .expect_error(409, "Employee is already clocked in");
    post("break-end")
        .await
        .expect_error(409, "Employee is not on a break");
    post("break-start").await.expect(200);
    post("break-start")
        .await
        .expect_error(409, "Employee is already on a break");
    post("clock-in")
        .await
        .expect_error(409, "Employee is already clocked in");
    post("clock-out").await.expect(200);
    post("clock-out")
        .await
        .expect_error(409, "Employee is not clocked in");
    // A second session the same day is fine.
    post("clock-in").await.expect(200);
    assert_eq!(stored(&t).await, (2, 1));
}

#[tokio::test]
async fn refusals_are_clear_and_change_nothing() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    employee(&gw, &t, "E-1", "Ann").await;
    employee(&gw, &t, "E-2", "Ben").await;
    gw.patch(
        &t.key,
        "/api/v1/employees/E-2/status",
        &json!({"status": "inactive"}),
    )
    .await
    .expect(200);
    let clock_in = |body: Value| {
        let (gw, key) = (gw.clone(), t.key.clone());
        async move { gw.post(&key, "/api/v1/attendance/clock-in", &body).await }
    };
    clock_in(json!({}))
        .await
        .expect_error(422, "The nip field is required");
    clock_in(json!({"nip": ""}))
        .await
        .expect_error(422, "The nip field is required");
    clock_in(json!({"nip": 42}))
        .await
        .expect_error(422, "The nip field must be a string");
    clock_in(json!({"nip": "NOPE"}))
        .await
        .expect_error(404, "Employee not found");
    clock_in(json!({"nip": "not a code!"}))
        .await
        .expect_error(404, "Employee not found");
    // Deactivated a moment ago: refused at once.
    clock_in(json!({"nip": "E-2"}))
        .await
        .expect_error(403, "Employee is inactive");
    clock_in(json!({"nip": "E-1", "latitude": 32.0}))
        .await
        .expect_error(
            422,
            "The longitude field is required when latitude is present",
        );
    clock_in(json!({"nip": "E-1", "latitude": 91, "longitude": 0}))
        .await
        .expect_error(422, "The latitude field must be between -90 and 90");
    clock_in(json!({"nip": "E-1", "latitude": 0, "longitude": -180.5}))
        .await
        .expect_error(422, "The longitude field must be between -180 and 180");
    clock_in(json!({"nip": "E-1", "latitude": "32", "longitude": 34}))
        .await
        .expect_error(422, "The latitude field must be a number");
    clock_in(json!({"nip": "E-1", "latitude": 48.8566, "longitude": 2.3522}))
        .await
        .expect_error(422, "Location is outside of any allowed work location");
    clock_in(json!({"nip": "E-1", "timestamp": "yesterday"}))
        .await
        .expect_error(
            422,
            "The timestamp field must be a valid RFC 3339 date-time (e.g. 2026-02-12T08:55:12Z)",
        );
    clock_in(json!({"nip": "E-1", "timestamp": ts(now() + Duration::minutes(3))}))
        .await
        .expect_error(
            422,
            "The timestamp field must not be more than 2 minutes in the future",
        );
    clock_in(json!({"nip": "E-1", "timestamp": ts(now() - Duration::hours(73))}))
        .await
        .expect_error(
            422,
            "The timestamp field must not be more than 72 hours in the past",
        );
    // The window is the org's: set to 24 hours, the message names 24 (once the change reached
    // attendance-svc's cache, which the organization.updated event invalidates). 73 hours back is
    // refused either way, so nothing is recorded while waiting.
    gw.patch(
        &t.key,
        "/api/v1/organization",
        &json!({"offline_backdate_hours": 24}),
    )
    .await
    .expect(200);
    let started = std::time::Instant::now();
    loop {
        let res =
            clock_in(json!({"nip": "E-1", "timestamp": ts(now() - Duration::hours(73))})).await;
        assert_eq!(res.status, 422, "{}", res.text);
        if res.message() == "The timestamp field must not be more than 24 hours in the past" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the org's window was not applied: {}",
            res.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    gw.send(
        gw.request(
            reqwest::Method::POST,
            Some(&t.key),
            "/api/v1/attendance/clock-in",
        )
        .header("content-type", "application/json")
        .body("{\"nip\":"),
    )
    .await
    .expect_error(400, "The request body is not valid JSON");
    assert_eq!(stored(&t).await, (0, 0));

    // Events stay in order: a late report may not land before what is recorded.
    let t0 = now() - Duration::hours(2);
    clock_in(json!({"nip": "E-1", "timestamp": ts(t0)}))
        .await
        .expect(200);
    gw.post(
        &t.key,
        "/api/v1/attendance/break-start",
        &json!({"nip": "E-1", "timestamp": ts(t0 - Duration::minutes(1))}),
    )
    .await
    .expect_error(
        422,
        &format!(
            "The timestamp must not be earlier than the employee's last attendance event ({})",
            ts(t0)
        ),
    );
    // A kiosk 2 minutes ahead is accepted; a later event without a timestamp never goes back.
    let ahead = now() + Duration::seconds(100);
    gw.post(
        &t.key,
        "/api/v1/attendance/break-start",
        &json!({"nip": "E-1", "timestamp": ts(ahead)}),
    )
    .await
    .expect(200);
    let res = gw.clock(&t.key, "break-end", "E-1").await.expect(200);
    assert_eq!(res.data()["break_end"], ts(ahead));
    assert_eq!(stored(&t).await, (1, 1));
}

#[tokio::test]
async fn the_nearest_containing_geofence_wins() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    // Main Office: (32.0853, 34.7818), 200 m. North: 0.0020° (222 m) north of it, 500 m.
    gw.post(
        &t.key,
        "/api/v1/locations",
        &json!({"name": "North", "latitude": 32.0873, "longitude": 34.7818, "radius_meters": 500}),
    )
    .await
    .expect(201);
    employee(&gw, &t, "E-1", "Ann").await;
    // 167 m from Main Office, 56 m from North: both contain it, North is nearer.
    let res = gw
        .post(
            &t.key,
            "/api/v1/attendance/clock-in",
            &json!({"nip": "E-1", "latitude": 32.0868, "longitude": 34.7818}),
        )
        .await
        .expect(200);
    assert_eq!(res.data()["location"], "North");
    // At Main Office's centre (222 m from North, inside both): Main Office.
    let res = gw
        .post(
            &t.key,
            "/api/v1/attendance/clock-out",
            &json!({"nip": "E-1", "latitude": 32.0853, "longitude": 34.7818}),
        )
        .await
        .expect(200);
    assert_eq!(res.data()["location"], "Main Office");
    // 500 m south of Main Office: only North's radius is large enough, but it is 722 m away.
    gw.post(
        &t.key,
        "/api/v1/attendance/clock-in",
        &json!({"nip": "E-1", "latitude": 32.0808, "longitude": 34.7818}),
    )
    .await
    .expect_error(422, "Location is outside of any allowed work location");
    // Without coordinates: the employee's own location.
    let res = gw.clock_in(&t.key, "E-1").await.expect(200);
    assert_eq!(res.data()["location"], "Main Office");
}

/// A clock write applies only if the employee's state is still the version it read. Any update
/// of the state row moves the version on, also one by code that does not know the column (a
/// replica of the previous release during a rolling update): what such a writer did in between
/// is never overwritten.
#[tokio::test]
async fn any_update_of_the_state_row_moves_its_version_on() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    employee(&gw, &t, "E-1", "Ann").await;
    gw.clock_in(&t.key, "E-1").await.expect(200);
    let db = clokio_tests::db().await;
    let version = || async {
        let (v,): (i64,) =
            sqlx::query_as("SELECT version FROM attendance.employee_state WHERE org_id = $1")
                .bind(t.org.id.as_uuid())
                .fetch_one(&db)
                .await
                .unwrap();
        v
    };
    let before = version().await;
    // What the previous release's lock did before every write.
    sqlx::query("UPDATE attendance.employee_state SET org_id = org_id WHERE org_id = $1")
        .bind(t.org.id.as_uuid())
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(version().await, before + 1);
    gw.clock_out(&t.key, "E-1").await.expect(200);
    assert_eq!(version().await, before + 2);
}

/// Holds employee `code`'s state row locked and starts their break, which waits for the lock: the
/// lock's transaction (rolled back to release it) and the break's answer to come.
async fn break_behind_a_lock(
    gw: &Gateway,
    t: &Tenant,
    code: &str,
) -> (
    sqlx::Transaction<'static, sqlx::Postgres>,
    tokio::task::JoinHandle<clokio_tests::Res>,
) {
    let db = clokio_tests::db().await;
    let mut hold = db.begin().await.unwrap();
    let (holder,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
        .fetch_one(&mut *hold)
        .await
        .unwrap();
    sqlx::query(
        "SELECT 1 FROM attendance.employee_state WHERE org_id = $1 AND employee_id = \
            (SELECT id FROM employee.employees WHERE org_id = $1 AND employee_code = $2) \
         FOR UPDATE",
    )
    .bind(t.org.id.as_uuid())
    .bind(code)
    .execute(&mut *hold)
    .await
    .unwrap();
    let blocked = tokio::spawn({
        let (gw, key, code) = (gw.clone(), t.key.clone(), code.to_owned());
        async move { gw.clock(&key, "break-start", &code).await }
    });
    clokio_tests::until_blocked_by(&db, holder, &format!("{code}'s break")).await;
    (hold, blocked)
}

/// Punches of different employees arriving together are written by one statement in one commit
/// (the rows they wrote carry one transaction id), and each still gets its own answer and its own
/// events: a punch held back behind another of its employee is decided again and refused as it
/// should be. Employee 1's state row is held locked, so its batch waits while the others queue up
/// behind it.
#[tokio::test]
async fn punches_arriving_together_are_written_together_each_with_its_own_answer() {
    use std::collections::HashSet;
    const N: usize = 24;
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    let mut config = stack.attendance_config();
    // The held batch waits for its lock instead of handing its write on, so the others queue.
    config.batch_lock_wait = std::time::Duration::from_secs(60);
    stack.start_attendance_svc_with(config).await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    clokio_tests::seed_employees(t.org.id, "P", N as i32, "2026-01-01").await;
    let code = |i: usize| format!("P{i:05}");
    let all = |action: &'static str, who: Vec<usize>| {
        let (gw, key) = (gw.clone(), t.key.clone());
        futures::future::join_all(who.into_iter().map(move |i| {
            let (gw, key) = (gw.clone(), key.clone());
            async move { gw.clock(&key, action, &format!("P{i:05}")).await }
        }))
    };
    let ins = all("clock-in", (1..=N).collect()).await;
    let mut sessions = HashSet::new();
    for (k, r) in ins.iter().enumerate() {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.data()["employee_name"], format!("Employee {}", k + 1));
        sessions.insert(r.data()["attendance_id"].as_i64().unwrap());
    }
    assert_eq!(sessions.len(), N, "each clock-in opened its own session");

    let db = clokio_tests::db().await;
    let org = t.org.id.as_uuid();
    let id_of = |i: usize| {
        let db = db.clone();
        async move {
            let (id,): (i64,) = sqlx::query_as(
                "SELECT id FROM employee.employees WHERE org_id = $1 AND employee_code = $2",
            )
            .bind(org)
            .bind(format!("P{i:05}"))
            .fetch_one(&db)
            .await
            .unwrap();
            id
        }
    };
    let first = id_of(1).await;
    let (hold, blocked) = break_behind_a_lock(&gw, &t, &code(1)).await;
    // Everyone else's break, and employee 2's twice: N writes wait for the next batch.
    let rest = tokio::spawn(all("break-start", (2..=N).chain([2]).collect()));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting = gw.metrics().await.value("clokio_clock_writes_waiting");
        if waiting >= N as f64 {
            assert_eq!(waiting, N as f64);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {waiting} writes queued behind the held batch"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    hold.rollback().await.unwrap();
    assert_eq!(blocked.await.unwrap().status, 200);
    let rest = rest.await.unwrap();
    let refused: Vec<_> = rest.iter().filter(|r| r.status != 200).collect();
    assert_eq!(
        refused.len(),
        1,
        "{:?}",
        rest.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(refused[0].status, 409, "{}", refused[0].text);
    assert_eq!(refused[0].message(), "Employee is already on a break");
    let (breaks, transactions): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT b.xmin::text) FROM attendance.breaks b \
         JOIN attendance.sessions s ON s.id = b.session_id \
         WHERE s.org_id = $1 AND s.employee_id <> $2",
    )
    .bind(org)
    .bind(first)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(breaks, N as i64 - 1);
    assert_eq!(
        transactions, 1,
        "the breaks queued together were written in one commit"
    );

    // Half end their break, then everyone clocks out (the other half's breaks end with it).
    for r in all("break-end", (1..=N / 2).collect()).await {
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.data()["duration_minutes"].is_i64(), "{}", r.text);
    }
    for r in all("clock-out", (1..=N).collect()).await {
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(sessions.contains(&r.data()["attendance_id"].as_i64().unwrap()));
    }
    let (open_sessions, open_breaks, open_states): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM attendance.sessions WHERE org_id = $1 AND clock_out IS NULL), \
            (SELECT count(*) FROM attendance.breaks b JOIN attendance.sessions s \
                ON s.id = b.session_id WHERE s.org_id = $1 AND b.ended_at IS NULL), \
            (SELECT count(*) FROM attendance.employee_state \
                WHERE org_id = $1 AND open_session_id IS NOT NULL)",
    )
    .bind(org)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((open_sessions, open_breaks, open_states), (0, 0, 0));
    assert_eq!(stored(&t).await, (N as i64, N as i64));
    // In, break start, break end (on its own or with the clock-out), out: four events each.
    assert_eq!(stack.published_events(t.org.id).await, 4 * N);
}

/// A batch that waits for a row lock (a period's close, an import) gives up after a moment and
/// its writes run alone: the other employees' punches go through while the lock is held, and the
/// locked employee's punch is written once it is released.
#[tokio::test]
async fn a_locked_employee_does_not_hold_up_the_other_punches() {
    const N: usize = 12;
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    clokio_tests::seed_employees(t.org.id, "L", N as i32, "2026-01-01").await;
    for i in 1..=N {
        gw.clock_in(&t.key, &format!("L{i:05}")).await.expect(200);
    }
    let (hold, blocked) = break_behind_a_lock(&gw, &t, "L00001").await;
    let others = futures::future::join_all((2..=N).map(|i| {
        let (gw, key) = (gw.clone(), t.key.clone());
        async move { gw.clock(&key, "break-start", &format!("L{i:05}")).await }
    }));
    let others = tokio::time::timeout(std::time::Duration::from_secs(10), others)
        .await
        .expect("the other punches went through while employee 1 was locked");
    for r in &others {
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert!(
        !blocked.is_finished(),
        "employee 1's break waited for its lock"
    );
    hold.rollback().await.unwrap();
    assert_eq!(blocked.await.unwrap().status, 200);
    let waits = gw
        .metrics()
        .await
        .value("clokio_clock_batch_lock_waits_total");
    assert!(waits >= 1.0, "{waits}");
    assert_eq!(stored(&t).await, (N as i64, N as i64));
}

#[tokio::test]
async fn concurrent_clock_ins_of_one_employee_let_exactly_one_through() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    employee(&gw, &t, "E-1", "Ann").await;
    let attempts = (0..16).map(|_| {
        let (gw, key) = (gw.clone(), t.key.clone());
        async move { gw.clock_in(&key, "E-1").await }
    });
    let results = futures::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 409, "{}", r.text);
        assert_eq!(r.message(), "Employee is already clocked in");
    }
    assert_eq!(stored(&t).await, (1, 0));

    // Break starts and clock-outs racing each other: one clock-out, at most one break (ended by
    // the clock-out), every refusal a documented 409, and exactly one event per change.
    let mixed = (0..16).map(|i| {
        let (gw, key) = (gw.clone(), t.key.clone());
        let path = if i % 2 == 0 {
            "/api/v1/attendance/break-start"
        } else {
            "/api/v1/attendance/clock-out"
        };
        async move { (path, gw.post(&key, path, &json!({"nip": "E-1"})).await) }
    });
    let results = futures::future::join_all(mixed).await;
    let ok = |p: &str| {
        results
            .iter()
            .filter(|(path, r)| path.ends_with(p) && r.status == 200)
            .count()
    };
    let (breaks, outs) = (ok("break-start"), ok("clock-out"));
    assert_eq!(outs, 1);
    assert!(breaks <= 1);
    for (_, r) in results.iter().filter(|(_, r)| r.status != 200) {
        assert_eq!(r.status, 409, "{}", r.text);
        assert!(
            [
                "Employee is not clocked in",
                "Employee is already on a break"
            ]
            .contains(&r.message()),
            "{}",
            r.text
        );
    }
    assert_eq!(stored(&t).await, (1, breaks as i64));
    let (open_sessions, open_breaks): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM attendance.sessions WHERE org_id = $1 AND clock_out IS NULL), \
                (SELECT count(*) FROM attendance.breaks b JOIN attendance.sessions s \
                 ON s.id = b.session_id WHERE s.org_id = $1 AND b.ended_at IS NULL)",
    )
    .bind(t.org.id.as_uuid())
    .fetch_one(&clokio_tests::db().await)
    .await
    .unwrap();
    assert_eq!((open_sessions, open_breaks), (0, 0));
    let mut events = stack
        .events(stack.bus_config.subjects.event("attendance", t.org.id, ">"))
        .await;
    let mut kinds = Vec::new();
    while let Some(e) = events.next_within(std::time::Duration::from_secs(2)).await {
        kinds.push(e.body["type"].as_str().unwrap().to_owned());
    }
    let mut want = vec!["attendance.clock-in"];
    want.extend(
        std::iter::repeat_n(["attendance.break-start", "attendance.break-end"], breaks).flatten(),
    );
    want.push("attendance.clock-out");
    assert_eq!(kinds, want);
}

#[tokio::test]
async fn the_database_itself_refuses_a_second_open_session() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let emp = employee(&gw, &t, "E-1", "Ann").await;
    gw.clock_in(&t.key, "E-1").await.expect(200);
    let db = clokio_tests::db().await;
    let err = sqlx::query(
        "INSERT INTO attendance.sessions (org_id, employee_id, work_date, clock_in, location_id, location) \
         VALUES ($1, $2, CURRENT_DATE, now(), 1, 'x')",
    )
    .bind(t.org.id.as_uuid())
    .bind(emp["employee_id"].as_i64().unwrap())
    .execute(&db)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("sessions_one_open"), "{err}");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_changes_nothing() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    employee(&gw, &t, "E-1", "Ann").await;
    employee(&gw, &t, "E-2", "Ben").await;
    let mut events = stack
        .events(stack.bus_config.subjects.event("attendance", t.org.id, ">"))
        .await;
    let send = |key: &str, path: &str, body: Value| {
        let (gw, api_key) = (gw.clone(), t.key.clone());
        let (key, path) = (key.to_owned(), path.to_owned());
        async move {
            gw.send(
                gw.request(reqwest::Method::POST, Some(&api_key), &path)
                    .header("Idempotency-Key", key)
                    .json(&body),
            )
            .await
        }
    };
    let first = send("k-1", "/api/v1/attendance/clock-in", json!({"nip": "E-1"}))
        .await
        .expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = send("k-1", "/api/v1/attendance/clock-in", json!({"nip": "E-1"}))
        .await
        .expect(200);
    assert_eq!(first.text, again.text, "the same status and body");
    assert_eq!(stored(&t).await, (1, 0));
    // The same key for another request: refused, nothing done.
    send("k-1", "/api/v1/attendance/clock-in", json!({"nip": "E-2"}))
        .await
        .expect_error(
            422,
            "The Idempotency-Key has already been used for a different request",
        );
    send("k-1", "/api/v1/attendance/clock-out", json!({"nip": "E-1"}))
        .await
        .expect_error(
            422,
            "The Idempotency-Key has already been used for a different request",
        );
    assert_eq!(stored(&t).await, (1, 0));
    // A refusal is an answer too: replayed even after the state changed.
    send("k-2", "/api/v1/attendance/clock-in", json!({"nip": "E-1"}))
        .await
        .expect_error(409, "Employee is already clocked in");
    gw.clock_out(&t.key, "E-1").await.expect(200);
    send("k-2", "/api/v1/attendance/clock-in", json!({"nip": "E-1"}))
        .await
        .expect_error(409, "Employee is already clocked in");
    // Keys are per organization.
    let other = stack.tenant(&gw, Plan::Enterprise).await;
    gw.create_employee(&other.key, "Cy", json!({"employee_code": "E-1"}))
        .await;
    gw.send(
        gw.request(
            reqwest::Method::POST,
            Some(&other.key),
            "/api/v1/attendance/clock-in",
        )
        .header("Idempotency-Key", "k-1")
        .json(&json!({"nip": "E-1"})),
    )
    .await
    .expect(200);
    send("", "/api/v1/attendance/clock-in", json!({"nip": "E-1"}))
        .await
        .expect_error(
            422,
            "The Idempotency-Key header must be 1 to 255 visible ASCII characters",
        );
    // Exactly one clock-in and one clock-out event for this org.
    let a = events.next().await;
    assert_eq!(a.body["type"], "attendance.clock-in");
    let b = events.next().await;
    assert_eq!(b.body["type"], "attendance.clock-out");
    assert!(
        events
            .none_within(std::time::Duration::from_millis(500))
            .await
    );
}

/// The same keyed request sent many times at the same instant (a kiosk's retries racing its
/// first attempt): one punch, one event, and every sender gets the first answer.
#[tokio::test]
async fn identical_keyed_requests_at_the_same_instant_punch_once() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    employee(&gw, &t, "E-1", "Ann").await;
    let mut events = stack
        .events(stack.bus_config.subjects.event("attendance", t.org.id, ">"))
        .await;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (gw, key, start) = (gw.clone(), t.key.clone(), start.clone());
            tokio::spawn(async move {
                let req = gw
                    .request(
                        reqwest::Method::POST,
                        Some(&key),
                        "/api/v1/attendance/clock-in",
                    )
                    .header("Idempotency-Key", "same-instant-1")
                    .json(&json!({"nip": "E-1"}));
                start.wait().await;
                gw.send(req).await
            })
        })
        .collect();
    let mut bodies = std::collections::HashSet::new();
    for s in senders {
        bodies.insert(s.await.unwrap().expect(200).text);
    }
    assert_eq!(
        bodies.len(),
        1,
        "every sender got the first answer: {bodies:?}"
    );
    assert_eq!(stored(&t).await, (1, 0));
    assert_eq!(events.next().await.body["type"], "attendance.clock-in");
    assert!(
        events
            .none_within(std::time::Duration::from_millis(500))
            .await,
        "one event"
    );
}

#[tokio::test]
async fn every_change_is_one_event_with_who_where_and_when() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let emp = gw
        .create_employee(
            &t.key,
            "Sarah Johnson",
            json!({"employee_code": "EMP-1042", "department": "Engineering"}),
        )
        .await;
    let mut events = stack
        .events(stack.bus_config.subjects.event("attendance", t.org.id, ">"))
        .await;
    let start = now() - Duration::hours(3);
    let ci = gw
        .post(
            &t.key,
            "/api/v1/attendance/clock-in",
            &json!({"nip": "EMP-1042", "timestamp": ts(start)}),
        )
        .await
        .expect(200);
    gw.post(
        &t.key,
        "/api/v1/attendance/break-start",
        &json!({"nip": "EMP-1042", "timestamp": ts(start + Duration::hours(1))}),
    )
    .await
    .expect(200);
    gw.post(
        &t.key,
        "/api/v1/attendance/clock-out",
        &json!({"nip": "EMP-1042", "timestamp": ts(start + Duration::hours(2))}),
    )
    .await
    .expect(200);
    let mut ids = std::collections::HashSet::new();
    for (kind, at) in [
        ("clock-in", start),
        ("break-start", start + Duration::hours(1)),
        ("break-end", start + Duration::hours(2)),
        ("clock-out", start + Duration::hours(2)),
    ] {
        let e = events.next().await;
        assert_eq!(
            e.subject,
            stack
                .bus_config
                .subjects
                .event("attendance", t.org.id, kind)
        );
        assert_eq!(e.body["type"], format!("attendance.{kind}"));
        assert_eq!(e.body["org_id"], t.org.id.to_string());
        assert_eq!(e.body["occurred_at"], ts(at));
        assert_eq!(e.msg_id, e.body["id"].as_str().unwrap());
        assert!(ids.insert(e.msg_id.clone()));
        let d = &e.body["data"];
        assert_eq!(d["event"], kind);
        assert_eq!(d["attendance_id"], ci.data()["attendance_id"]);
        assert_eq!(d["employee_id"], emp["employee_id"]);
        assert_eq!(d["employee_code"], "EMP-1042");
        assert_eq!(d["employee_name"], "Sarah Johnson");
        assert_eq!(d["department"], "Engineering");
        assert_eq!(d["location_id"], emp["location_id"]);
        assert_eq!(d["location_name"], "Main Office");
        assert_eq!(d["timestamp"], ts(at));
        assert_eq!(d["imported"], false);
        if kind == "clock-out" {
            assert_eq!(d["total_hours"], 1.0);
            assert_eq!(d["break_minutes"], 60);
        }
    }
    assert!(
        events
            .none_within(std::time::Duration::from_millis(300))
            .await
    );
}

/// A kiosk up to 2 minutes fast opens a session that "began" in the future: until then it counts
/// as nothing, never as negative time.
#[tokio::test]
async fn a_session_opened_slightly_in_the_future_counts_as_zero_not_negative() {
    let (stack, gw) = Stack::start().await;
    // A zone where it is between 04:00 and 21:00 now, so the last hour is the same local date.
    let zone = ["UTC", "Asia/Tokyo"]
        .into_iter()
        .find(|z| {
            let tz: chrono_tz::Tz = z.parse().unwrap();
            let h = chrono::Timelike::hour(&now().with_timezone(&tz));
            (4..=20).contains(&h)
        })
        .unwrap();
    let tz: chrono_tz::Tz = zone.parse().unwrap();
    let t = stack.tenant_in(&gw, Plan::Enterprise, zone).await;
    employee(&gw, &t, "E-1", "Ann").await;
    let start = now() - Duration::minutes(60);
    gw.post(
        &t.key,
        "/api/v1/attendance/import",
        &json!({"records": [{"nip": "E-1", "clock_in": ts(start), "clock_out": ts(start + Duration::minutes(30))}]}),
    )
    .await
    .expect(201);
    gw.post(
        &t.key,
        "/api/v1/attendance/clock-in",
        &json!({"nip": "E-1", "timestamp": ts(now() + Duration::seconds(100))}),
    )
    .await
    .expect(200);
    let today = now().with_timezone(&tz).date_naive();
    let res = gw
        .get(&t.key, &format!("/api/v1/attendance/daily?date={today}"))
        .await
        .expect(200);
    assert_eq!(res.data()[0]["total_hours"], 0.5, "{}", res.text);
    assert_eq!(res.data()[0]["clock_out"], Value::Null);
    let res = gw
        .get(&t.key, "/api/v1/attendance/employee/E-1/today")
        .await
        .expect(200);
    assert_eq!(res.data()["summary"]["total_work_minutes"], 30);
    assert_eq!(res.data()["work_sessions"][1]["duration_minutes"], 0);
}

/// A punch is decided on the employee's state as it stands, not on what the replica that took the
/// previous punch remembers of it: a change written in between by anything else (another
/// replica, a correction, a close) moved the state's version on, and counts.
#[tokio::test]
async fn a_punch_after_a_change_made_elsewhere_is_decided_on_that_change() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    employee(&gw, &t, "E-1", "Ann").await;
    let db = clokio_tests::db().await;
    // What another replica's correction writes: the open session began an hour earlier, with a
    // 10-minute break, closed.
    let change_elsewhere = || async {
        sqlx::query(
            "WITH s AS (SELECT open_session_id AS id FROM attendance.employee_state \
                WHERE org_id = $1), \
             b AS (UPDATE attendance.breaks SET started_at = started_at - interval '30 minutes', \
                ended_at = started_at - interval '20 minutes' WHERE session_id = (SELECT id FROM s)), \
             x AS (UPDATE attendance.sessions SET clock_in = clock_in - interval '1 hour', \
                break_open_since = NULL, break_seconds = 600, revision = revision + 1 \
                WHERE id = (SELECT id FROM s)) \
             UPDATE attendance.employee_state SET last_event_at = last_event_at WHERE org_id = $1",
        )
        .bind(t.org.id.as_uuid())
        .execute(&db)
        .await
        .unwrap();
    };

    gw.clock_in(&t.key, "E-1").await.expect(200);
    gw.clock(&t.key, "break-start", "E-1").await.expect(200);
    change_elsewhere().await;
    // Decided on what the replica remembers from the break's start, this would end a break of a
    // few seconds in a session of a few seconds.
    let out = gw.clock_out(&t.key, "E-1").await.expect(200);
    assert_eq!(out.data()["break_minutes"], 10, "{}", out.text);
    assert_eq!(out.data()["total_hours"], 0.83, "{}", out.text);
    let (break_seconds, open_breaks): (i64, i64) = sqlx::query_as(
        "SELECT s.break_seconds, (SELECT count(*) FROM attendance.breaks b \
            WHERE b.session_id = s.id AND b.ended_at IS NULL) \
         FROM attendance.sessions s WHERE s.org_id = $1",
    )
    .bind(t.org.id.as_uuid())
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((break_seconds, open_breaks), (600, 0));

    gw.clock_in(&t.key, "E-1").await.expect(200);
    gw.clock(&t.key, "break-start", "E-1").await.expect(200);
    change_elsewhere().await;
    gw.clock(&t.key, "break-end", "E-1")
        .await
        .expect_error(409, "Employee is not on a break");
    gw.clock_out(&t.key, "E-1").await.expect(200);
    assert_eq!(stored(&t).await, (2, 2));
}

/// Two replicas take an employee's punches in turn, as the bus hands them out: each punch follows
/// writes the other replica made, and is decided on them.
#[tokio::test]
async fn punches_spread_over_two_replicas_follow_each_other() {
    let (stack, gw) = Stack::start().await;
    let _second = stack.isolated_attendance_svc();
    stack
        .wait_for_replicas(clokio_bus::ServiceName::Attendance, 2)
        .await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    const EMPLOYEES: usize = 8;
    const CYCLES: usize = 5;
    for i in 0..EMPLOYEES {
        employee(&gw, &t, &format!("E-{i}"), "Ann").await;
    }
    let days = (0..EMPLOYEES).map(|i| {
        let (gw, key) = (gw.clone(), t.key.clone());
        async move {
            let code = format!("E-{i}");
            for _ in 0..CYCLES {
                for action in ["clock-in", "break-start", "break-end", "clock-out"] {
                    let res = gw.clock(&key, action, &code).await;
                    assert_eq!(res.status, 200, "{action} {code}: {}", res.text);
                }
            }
        }
    });
    futures::future::join_all(days).await;
    let n = (EMPLOYEES * CYCLES) as i64;
    assert_eq!(stored(&t).await, (n, n));
    // Every session closed, its break closed and counted once.
    let (closed, consistent, versions): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.clock_out IS NOT NULL AND s.break_open_since IS NULL), \
            count(*) FILTER (WHERE s.break_seconds = (SELECT sum(extract(epoch FROM b.ended_at - b.started_at))::bigint \
                FROM attendance.breaks b WHERE b.session_id = s.id)), \
            (SELECT count(*) FROM attendance.employee_state e WHERE e.org_id = $1 \
                AND e.open_session_id IS NULL AND e.version >= 4 * $2) \
         FROM attendance.sessions s WHERE s.org_id = $1",
    )
    .bind(t.org.id.as_uuid())
    .bind(CYCLES as i64)
    .fetch_one(&clokio_tests::db().await)
    .await
    .unwrap();
    assert_eq!((closed, consistent, versions), (n, n, EMPLOYEES as i64));
}

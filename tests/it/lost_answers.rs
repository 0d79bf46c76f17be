//! A connection to Postgres that breaks in the middle of a clock write: the answer says what the
//! database holds. Postgres makes a commit durable before it answers, so a crash can keep a
//! committed write's answer from us; answering 503 then would tell a kiosk that a recorded
//! clock-in failed (its retry meets "already clocked in", and webhooks announce a punch the
//! client was told did not happen).

use std::net::ToSocketAddrs;
use std::time::Duration;

use clokio_bus::types::Plan;
use clokio_tests::{Cut, CutProxy, Gateway, Stack, Tenant, json};
use reqwest::Method;

/// A stack whose attendance-svc reaches Postgres through a proxy that can cut its connection.
async fn stack() -> (Stack, Gateway, Tenant, CutProxy) {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    let url = reqwest::Url::parse(&stack.database_url).expect("the database URL");
    let upstream = (url.host_str().expect("a host"), url.port().unwrap_or(5432))
        .to_socket_addrs()
        .expect("the database's address")
        .next()
        .expect("an address");
    let proxy = CutProxy::start(upstream).await;
    stack.database_url = proxy.url(&stack.database_url);
    stack.start_attendance_svc().await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    (stack, gw, t, proxy)
}

/// The employee's sessions: (id, closed).
async fn sessions(stack: &Stack, t: &Tenant, code: &str) -> Vec<(i64, bool)> {
    sqlx::query_as(
        "SELECT s.id, s.clock_out IS NOT NULL FROM attendance.sessions s \
         JOIN employee.employees e ON e.id = s.employee_id \
         WHERE s.org_id = $1 AND e.employee_code = $2 ORDER BY s.id",
    )
    .bind(t.org.id.as_uuid())
    .bind(code)
    .fetch_all(&stack.db().await)
    .await
    .unwrap()
}

/// The org's first `n` clock events on the stream, waiting for each as long as a busy relay may
/// take, then making sure no other follows: (attendance id, event).
async fn events(stack: &Stack, t: &Tenant, n: usize) -> Vec<(i64, String)> {
    let prefix = stack.bus_config.subjects.prefix().to_string();
    let mut stream = stack
        .events(format!("{prefix}.events.attendance.{}.>", t.org.id))
        .await;
    let mut seen = Vec::new();
    while seen.len() < n {
        let Some(e) = stream.next_within(Duration::from_secs(15)).await else {
            break;
        };
        seen.push((
            e.body["data"]["attendance_id"].as_i64().unwrap_or_default(),
            e.body["data"]["event"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
    }
    assert!(
        stream.none_within(Duration::from_millis(500)).await,
        "an event more than the writes: {seen:?}"
    );
    seen
}

#[tokio::test]
async fn a_write_that_committed_before_its_connection_broke_is_answered_as_done() {
    let (stack, gw, t, proxy) = stack().await;
    // The name travels in the write's outbox event, and in no read.
    let name = "Cut Wire Kiosk Worker";
    gw.create_employee(&t.key, name, json!({"employee_code": "CUT-1"}))
        .await;

    // Without a key the write is its own transaction: it commits, then the answer is lost.
    proxy.arm(&[name.as_bytes()], Cut::AfterRequest);
    let res = gw.clock_in(&t.key, "CUT-1").await;
    assert!(proxy.fired(), "the write's connection was cut");
    let res = res.expect(200);
    assert_eq!(res.message(), "Employee clocked in successfully");
    let id = res.data()["attendance_id"].as_i64().unwrap();
    assert_eq!(sessions(&stack, &t, "CUT-1").await, [(id, false)]);

    // With a key the work commits with the key's row: the COMMIT's answer is lost.
    proxy.arm(&[name.as_bytes(), b"COMMIT"], Cut::AfterRequest);
    let clock_out = || {
        gw.request(Method::POST, Some(&t.key), "/api/v1/attendance/clock-out")
            .header("Idempotency-Key", "cut-clock-out-1")
            .json(&json!({"nip": "CUT-1"}))
    };
    let res = gw.send(clock_out()).await;
    assert!(proxy.fired(), "the commit's connection was cut");
    let res = res.expect(200);
    assert_eq!(res.message(), "Employee clocked out successfully");
    assert_eq!(res.data()["attendance_id"], id);
    assert_eq!(sessions(&stack, &t, "CUT-1").await, [(id, true)]);
    // The key holds the same answer.
    let replay = gw.send(clock_out()).await.expect(200);
    assert_eq!(replay.body, res.body);

    // Each write has its one event.
    assert_eq!(
        events(&stack, &t, 2).await,
        [(id, "clock-in".to_owned()), (id, "clock-out".to_owned())]
    );
}

#[tokio::test]
async fn a_write_that_never_reached_the_database_is_a_503_and_can_be_sent_again() {
    let (stack, gw, t, proxy) = stack().await;
    let name = "Cut Wire Early Worker";
    gw.create_employee(&t.key, name, json!({"employee_code": "CUT-2"}))
        .await;

    proxy.arm(&[name.as_bytes()], Cut::BeforeRequest);
    gw.clock_in(&t.key, "CUT-2")
        .await
        .expect_error(503, "Service temporarily unavailable");
    assert!(proxy.fired(), "the write's connection was cut");
    assert_eq!(sessions(&stack, &t, "CUT-2").await, []);

    // Nothing was recorded, so the same punch again is the first.
    let res = gw.clock_in(&t.key, "CUT-2").await.expect(200);
    let id = res.data()["attendance_id"].as_i64().unwrap();
    assert_eq!(sessions(&stack, &t, "CUT-2").await, [(id, false)]);
    assert_eq!(events(&stack, &t, 1).await, [(id, "clock-in".to_owned())]);

    // With an Idempotency-Key the 503 is not kept as the key's answer: nothing was stored with
    // it, so the same key sends the punch as if for the first time.
    let keyed = || {
        gw.request(
            reqwest::Method::POST,
            Some(&t.key),
            "/api/v1/attendance/clock-out",
        )
        .header("Idempotency-Key", "cut-early-out-1")
        .json(&json!({"nip": "CUT-2"}))
    };
    proxy.arm(&[name.as_bytes()], Cut::BeforeRequest);
    gw.send(keyed())
        .await
        .expect_error(503, "Service temporarily unavailable");
    assert!(proxy.fired(), "the keyed write's connection was cut");
    assert_eq!(sessions(&stack, &t, "CUT-2").await, [(id, false)]);
    gw.send(keyed()).await.expect(200);
    assert_eq!(sessions(&stack, &t, "CUT-2").await, [(id, true)]);
    assert_eq!(
        events(&stack, &t, 2).await,
        [(id, "clock-in".to_owned()), (id, "clock-out".to_owned())]
    );
}

/// A write decided on what the replica remembered of the employee (its own last punch) may name a
/// session that has moved on since. When that write's connection breaks, a break the session had
/// at the same second must not be taken for the write's: it is the write's only if the
/// employee's state is as the write would have left it.
#[tokio::test]
async fn a_lost_write_on_a_state_that_moved_on_is_not_taken_for_an_earlier_one() {
    let (stack, gw, t, proxy) = stack().await;
    let name = "Cut Wire Stale Worker";
    gw.create_employee(&t.key, name, json!({"employee_code": "CUT-3"}))
        .await;
    let id = gw.clock_in(&t.key, "CUT-3").await.expect(200).data()["attendance_id"]
        .as_i64()
        .unwrap();
    // A kiosk's break of no length, a minute ahead: the next punch without a timestamp is dated
    // then too, as the same second.
    let at = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 60, 0).unwrap();
    let at_text = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for action in ["break-start", "break-end"] {
        gw.post(
            &t.key,
            &format!("/api/v1/attendance/{action}"),
            &json!({"nip": "CUT-3", "timestamp": at_text}),
        )
        .await
        .expect(200);
    }
    // Another replica's clock-out of the session, at that second, which this replica does not see.
    sqlx::query(
        "WITH s AS (UPDATE attendance.sessions SET clock_out = $2, revision = revision + 1 \
            WHERE id = $1) \
         UPDATE attendance.employee_state SET open_session_id = NULL, last_event_at = $2 \
         WHERE open_session_id = $1",
    )
    .bind(id)
    .bind(at)
    .execute(&stack.db().await)
    .await
    .unwrap();

    // Decided on the remembered state: a break of the closed session at that second, whose write
    // never reaches the database. The earlier break, at the same second, is not this one.
    proxy.arm(&[name.as_bytes()], Cut::BeforeRequest);
    let res = gw.clock(&t.key, "break-start", "CUT-3").await;
    assert!(proxy.fired(), "the write's connection was cut");
    assert_eq!(res.status, 504, "{}", res.text);
    let (breaks,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM attendance.breaks WHERE session_id = $1")
            .bind(id)
            .fetch_one(&stack.db().await)
            .await
            .unwrap();
    assert_eq!(breaks, 1);
    // Read afresh, the employee is not clocked in.
    gw.clock(&t.key, "break-start", "CUT-3")
        .await
        .expect_error(409, "Employee is not clocked in");
    assert_eq!(
        events(&stack, &t, 3).await,
        [
            (id, "clock-in".to_owned()),
            (id, "break-start".to_owned()),
            (id, "break-end".to_owned())
        ]
    );
}

//! `GET /api/v1/events/stream`: events in order with resumable positions, resume without loss or
//! duplicate (on another gateway, after a gateway dies, after the position expired), filters,
//! scope and per-key limits, a slow reader cut off, heartbeats and the shutdown's `retry:`.

use std::time::{Duration, Instant};

use clokio_bus::events::Event;
use clokio_bus::ids::{AttendanceId, EmployeeId, EventId, LocationId, OrgId};
use clokio_bus::ops::AttendanceEvent;
use clokio_bus::types::{EmployeeCode, Plan};
use clokio_tests::{EventStream, Frame, Gateway, Stack, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

async fn clock(gw: &Gateway, key: &str, code: &str, action: &str) {
    gw.post(
        key,
        &format!("/api/v1/attendance/{action}"),
        &json!({"nip": code}),
    )
    .await
    .expect(200);
}

fn kinds(frames: &[Frame]) -> Vec<&str> {
    frames.iter().map(|f| f.event.as_deref().unwrap()).collect()
}

fn assert_ascending(frames: &[Frame], after: u64) {
    let mut last = after;
    for f in frames {
        assert!(f.seq() > last, "positions not ascending: {frames:?}");
        last = f.seq();
    }
}

async fn open(gw: &Gateway, key: &str, query: &str, last: Option<&str>) -> EventStream {
    match gw.event_stream(key, query, last).await {
        Ok(s) => s,
        Err(res) => panic!("stream refused: {} {}", res.status, res.text),
    }
}

#[tokio::test]
async fn events_arrive_in_order_and_resume_exactly_once_on_another_gateway() {
    let (mut stack, gw) = Stack::start().await;
    let gw2 = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let other = stack.tenant(&gw, Plan::Enterprise).await;
    gw.create_employee(
        &t.key,
        "Ann",
        json!({"employee_code": "E-1", "department": "Ops"}),
    )
    .await;
    gw.create_employee(&other.key, "Olga", json!({"employee_code": "O-1"}))
        .await;

    let mut s = open(&gw, &t.key, "", None).await;
    assert_eq!(s.headers.get("content-type").unwrap(), "text/event-stream");
    clock(&gw, &t.key, "E-1", "clock-in").await;
    // Another organization's events never reach this stream.
    clock(&gw, &other.key, "O-1", "clock-in").await;
    clock(&gw, &t.key, "E-1", "break-start").await;
    clock(&gw, &t.key, "E-1", "break-end").await;
    let got = s.events(3, WAIT).await;
    assert_eq!(kinds(&got), ["clock-in", "break-start", "break-end"]);
    assert_ascending(&got, 0);
    // `data:` is what a generic webhook receives.
    let first = got[0].json();
    assert_eq!(first["type"], "clock-in");
    assert_eq!(first["data"]["employee_code"], "E-1");
    assert_eq!(first["data"]["department"], "Ops");
    assert_eq!(first["data"]["location_name"], "Main Office");
    assert!(first["timestamp"].is_string());
    let last = got[2].id.clone().unwrap();
    drop(s);

    // Missed while away: three events.
    clock(&gw, &t.key, "E-1", "clock-out").await;
    clock(&gw, &t.key, "E-1", "clock-in").await;
    clock(&gw, &t.key, "E-1", "clock-out").await;
    // Resumed on the other gateway: each missed event once, in order, then live ones.
    let mut r = open(&gw2, &t.key, "", Some(&last)).await;
    let missed = r.events(3, WAIT).await;
    assert_eq!(kinds(&missed), ["clock-out", "clock-in", "clock-out"]);
    assert_ascending(&missed, last.parse().unwrap());
    clock(&gw, &t.key, "E-1", "clock-in").await;
    let live = r.event(WAIT).await;
    assert_eq!(live.event.as_deref(), Some("clock-in"));
    assert!(live.seq() > missed[2].seq());
    r.expect_no_event(Duration::from_millis(500)).await;

    // The query parameter resumes the same way (for clients that cannot set headers).
    let mut q = open(&gw, &t.key, &format!("last_event_id={last}"), None).await;
    let again = q.events(4, WAIT).await;
    assert_eq!(
        kinds(&again),
        ["clock-out", "clock-in", "clock-out", "clock-in"]
    );
    assert_eq!(again[3].id, live.id);
    q.expect_no_event(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_stream_resumes_after_its_gateway_dies_and_an_expired_position_resets() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    let (mut dying, gw1) = stack.isolated_gateway();
    gw1.wait_healthy().await;
    let mut s = open(&gw1, &t.key, "", None).await;
    clock(&gw, &t.key, "E-1", "clock-in").await;
    let seen = s.event(WAIT).await;
    dying.kill();
    assert_eq!(
        s.frame(WAIT).await,
        None,
        "the stream ends with its gateway"
    );
    clock(&gw, &t.key, "E-1", "break-start").await;
    clock(&gw, &t.key, "E-1", "break-end").await;
    let mut r = open(&gw, &t.key, "", seen.id.as_deref()).await;
    let missed = r.events(2, WAIT).await;
    assert_eq!(kinds(&missed), ["break-start", "break-end"]);
    assert_ascending(&missed, seen.seq());

    // Past the stream's retention (here: purged), a position cannot resume: one reset, then
    // live events.
    let js = async_nats::jetstream::new(stack.nats.clone());
    js.get_stream(stack.bus_config.subjects.events_stream())
        .await
        .unwrap()
        .purge()
        .await
        .unwrap();
    let mut reset = open(&gw, &t.key, "", seen.id.as_deref()).await;
    let first = reset.event(WAIT).await;
    assert_eq!(first.event.as_deref(), Some("reset"));
    assert_eq!(first.id, None);
    clock(&gw, &t.key, "E-1", "clock-out").await;
    assert_eq!(reset.event(WAIT).await.event.as_deref(), Some("clock-out"));
    // A position never given out resets too.
    let mut future = open(&gw, &t.key, "", Some("999999999")).await;
    assert_eq!(future.event(WAIT).await.event.as_deref(), Some("reset"));
    clock(&gw, &t.key, "E-1", "clock-in").await;
    assert_eq!(future.event(WAIT).await.event.as_deref(), Some("clock-in"));
}

#[tokio::test]
async fn filters_scope_limits_and_bad_input() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    gw.create_employee(
        &t.key,
        "Ann",
        json!({"employee_code": "E-1", "department": "Ops"}),
    )
    .await;
    gw.create_employee(
        &t.key,
        "Bob",
        json!({"employee_code": "E-2", "department": "Sales"}),
    )
    .await;
    let mut by_type = open(&gw, &t.key, "types=clock-out", None).await;
    let mut by_employee = open(&gw, &t.key, "employees=E-2", None).await;
    let mut by_department = open(&gw, &t.key, "departments=Ops,Finance", None).await;
    let mut by_location = open(&gw, &t.key, "locations=Elsewhere", None).await;
    for (code, action) in [
        ("E-1", "clock-in"),
        ("E-2", "clock-in"),
        ("E-1", "clock-out"),
        ("E-2", "clock-out"),
    ] {
        clock(&gw, &t.key, code, action).await;
    }
    let outs = by_type.events(2, WAIT).await;
    assert_eq!(kinds(&outs), ["clock-out", "clock-out"]);
    let bobs = by_employee.events(2, WAIT).await;
    assert!(
        bobs.iter()
            .all(|f| f.json()["data"]["employee_code"] == "E-2")
    );
    let ops = by_department.events(2, WAIT).await;
    assert!(
        ops.iter()
            .all(|f| f.json()["data"]["employee_code"] == "E-1")
    );
    by_location
        .expect_no_event(Duration::from_millis(500))
        .await;
    by_type.expect_no_event(Duration::from_millis(200)).await;
    drop((by_type, by_employee, by_department, by_location));

    // Bad input is a 422, a key without events:read a 403.
    for (query, message) in [
        (
            "types=clock-in,lunch",
            "The types field has an unknown event type: lunch. Types are clock-in, clock-out, break-start, break-end, correction",
        ),
        (
            "last_event_id=abc",
            "The last_event_id field must be a position this stream sent",
        ),
    ] {
        let res = gw.event_stream(&t.key, query, None).await.err().unwrap();
        res.expect_error(422, message);
    }
    let kiosk = gw
        .post(
            &t.key,
            "/api/v1/api-keys",
            &json!({"name": "Lobby", "preset": "kiosk"}),
        )
        .await;
    let kiosk = kiosk.data()["key"].as_str().unwrap().to_owned();
    gw.event_stream(&kiosk, "", None)
        .await
        .err()
        .unwrap()
        .expect_error(403, "This API key does not have the events:read scope");

    // Five open streams per key, whichever gateway they are on; the sixth is refused. Each
    // opening counts once against the rate limit, the events on it do not.
    let reader = gw
        .post(
            &t.key,
            "/api/v1/api-keys",
            &json!({"name": "Wall", "preset": "read-only"}),
        )
        .await;
    let reader = reader.data()["key"].as_str().unwrap().to_owned();
    let mut open_streams = Vec::new();
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let s = open(&gw, &reader, "", None).await;
        remaining.push(
            s.headers["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
        open_streams.push(s);
    }
    assert!(
        remaining.windows(2).all(|w| w[1] == w[0] - 1),
        "{remaining:?}"
    );
    gw.event_stream(&reader, "", None)
        .await
        .err()
        .unwrap()
        .expect_error(
            429,
            "This API key already has 5 open event streams; close one first",
        );
    clock(&gw, &t.key, "E-1", "clock-in").await;
    for s in &mut open_streams {
        s.event(WAIT).await;
    }
    let res = gw.get(&reader, "/api/v1/employees").await.expect(200);
    assert_eq!(
        res.header("x-ratelimit-remaining")
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        remaining[4] - 2,
        "the refused sixth and this request counted; the events did not"
    );
    // Closing one frees its place (released in the background).
    open_streams.pop();
    let closed = Instant::now();
    loop {
        match gw.event_stream(&reader, "", None).await {
            Ok(_) => break,
            Err(res) => assert_eq!(res.status, 429),
        }
        assert!(
            closed.elapsed() < WAIT,
            "the closed stream's place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A JetStream-stored clock-in of `org`'s employee `code`, as attendance-svc publishes them.
fn clock_in_event(org: OrgId, code: &str, n: u32) -> Event<AttendanceEvent> {
    let at = chrono::Utc::now();
    Event {
        id: EventId::new_random(),
        org_id: org,
        occurred_at: at,
        kind: "attendance.clock-in".to_owned(),
        data: AttendanceEvent {
            event: "clock-in".to_owned(),
            attendance_id: AttendanceId::new(i64::from(n) + 1),
            employee_id: EmployeeId::new(1),
            employee_code: EmployeeCode::parse(code).unwrap(),
            employee_name: format!("Worker {n}"),
            department: None,
            location_id: LocationId::new(1),
            location_name: "Main Office".to_owned(),
            timestamp: at,
            work_date: at.date_naive(),
            clock_in: at,
            clock_out: None,
            total_hours: None,
            break_minutes: None,
            break_seconds: None,
            imported: false,
            revision: Some(1),
            auto_closed: false,
            deleted: false,
            correction: None,
        },
    }
}

/// Publishes synthetic clock-ins `Worker {from}`…`Worker {to - 1}` of `org` straight to the
/// events stream, each acknowledged by JetStream: faster than the API for thousands.
async fn publish_clock_ins(stack: &Stack, org: OrgId, from: u32, to: u32) {
    let js = async_nats::jetstream::new(stack.nats.clone());
    let subject = stack
        .bus_config
        .subjects
        .event("attendance", org, "clock-in");
    for n in from..to {
        let event = clock_in_event(org, "E-1", n);
        js.publish(subject.clone(), serde_json::to_vec(&event).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// A reader that stops reading is cut off; another reader of the same org gets every event.
#[tokio::test]
async fn a_reader_that_stops_reading_is_cut_off_and_others_keep_receiving() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    stack.start_attendance_svc().await;
    // A buffer of one publishing step: the reader that reads has taken every event of a step
    // before the next begins, so however late its writer runs on a busy machine its buffer never
    // overflows (with 8, a clean-clone run cut it off too); the stalled one's does.
    const STEP: u32 = 250;
    let mut config = stack.gateway_config();
    config.stream_buffer = STEP as usize;
    let gw = stack.start_gateway_with(config).await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;

    // The stalled reader: a socket with a small receive buffer that reads the head and stops.
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr.parse().unwrap()).await.unwrap();
    stalled
        .write_all(
            format!(
                "GET /api/v1/events/stream HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {}\r\n\r\n",
                t.key
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stalled.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut reader = open(&gw, &t.key, "", None).await;

    // Publish until the gateway has cut the stalled reader off (its socket buffers take some
    // first), and a little more. The reader that reads reads while events are published, as a
    // client that keeps up does (not after each batch: a busy machine's socket buffers may not
    // hold a whole batch).
    let mut published = 0u32;
    let mut all = Vec::new();
    loop {
        let (_, got) = tokio::join!(
            publish_clock_ins(&stack, t.org.id, published, published + STEP),
            reader.events(STEP as usize, WAIT)
        );
        published += STEP;
        // It keeps up and gets every event, in order.
        all.extend(got);
        let metrics = gw.metrics().await;
        if metrics.contains("clokio_event_streams_cut_total 1") {
            break;
        }
        assert!(published < 40_000, "the stalled reader was never cut off");
    }
    assert_ascending(&all, 0);
    assert_eq!(all.len(), published as usize);
    assert_eq!(
        all.last().unwrap().json()["data"]["employee_name"],
        format!("Worker {}", published - 1)
    );
    // The stalled one, read now, ends before the last event: it was cut off.
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 8192];
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rest.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stalled stream was never closed");
    let text = String::from_utf8_lossy(&rest);
    let got = text.matches("\nid: ").count() + usize::from(text.starts_with("id: "));
    assert!(
        got < published as usize,
        "the stalled reader got all {got} events"
    );
}

/// A resume while events keep coming: the replay and the live events meet without a gap or a
/// duplicate, and live events that arrive during a long replay are held, not a reason to cut
/// the stream off (its buffer here is 8 events).
#[tokio::test]
async fn a_resume_under_live_traffic_loses_and_repeats_nothing() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    stack.start_attendance_svc().await;
    let mut config = stack.gateway_config();
    config.stream_buffer = 8;
    let gw = stack.start_gateway_with(config).await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let mut first = open(&gw, &t.key, "", None).await;
    publish_clock_ins(&stack, t.org.id, 0, 1).await;
    let position = first.event(WAIT).await;
    drop(first);
    publish_clock_ins(&stack, t.org.id, 1, 400).await;
    // The rest while the resume replays.
    let (_, got) = tokio::join!(publish_clock_ins(&stack, t.org.id, 400, 800), async {
        let mut resumed = open(&gw, &t.key, "", position.id.as_deref()).await;
        let got = resumed.events(799, WAIT).await;
        resumed.expect_no_event(Duration::from_millis(300)).await;
        got
    });
    assert_ascending(&got, position.seq());
    let names: Vec<String> = got
        .iter()
        .map(|f| {
            f.json()["data"]["employee_name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let want: Vec<String> = (1..800).map(|n| format!("Worker {n}")).collect();
    assert_eq!(names, want);
}

/// Each resume replays through an ephemeral consumer of its own; none outlives its client (the
/// server removes them once nobody listens), so clients that come and go leak nothing.
#[tokio::test]
async fn replay_consumers_do_not_outlive_their_clients() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    let mut first = open(&gw, &t.key, "", None).await;
    clock(&gw, &t.key, "E-1", "clock-in").await;
    let position = first.event(WAIT).await;
    drop(first);
    clock(&gw, &t.key, "E-1", "clock-out").await;
    let js = async_nats::jetstream::new(stack.nats.clone());
    let name = stack.bus_config.subjects.events_stream();
    let consumers = || async {
        js.get_stream(&name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .consumer_count
    };
    let baseline = consumers().await;
    for _ in 0..3 {
        let mut r = open(&gw, &t.key, "", position.id.as_deref()).await;
        assert_eq!(r.event(WAIT).await.event.as_deref(), Some("clock-out"));
    }
    assert!(
        consumers().await > baseline,
        "the resumes made no consumers"
    );
    let left = Instant::now();
    while consumers().await > baseline {
        assert!(
            left.elapsed() < Duration::from_secs(90),
            "replay consumers outlived their clients"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Heartbeats keep an idle stream open; a revoked key's stream ends; a gateway shutting down
/// sends `retry:` and closes its streams, so its drain ends and clients reconnect elsewhere.
#[tokio::test]
async fn heartbeats_revocation_and_a_shutdown_that_asks_clients_to_reconnect() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    let mut config = stack.gateway_config();
    config.stream_heartbeat = Duration::from_millis(200);
    config.ops_addr = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let own = Gateway::new(format!("http://{}", listener.local_addr().unwrap()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(clokio_gateway::run(config, listener, async move {
        let _ = stopped.await;
    }));
    own.wait_healthy().await;
    let mut s = open(&own, &t.key, "", None).await;
    let beat = s.frame(WAIT).await.unwrap();
    assert_eq!((beat.event, beat.data, beat.id), (None, None, None));
    assert!(!beat.comments.is_empty(), "{:?}", beat.comments);

    // A key revoked while its stream is open: the stream ends at its next check.
    let created = own
        .post(&t.key, "/api/v1/api-keys", &json!({"name": "Wall display"}))
        .await;
    let (wall, id) = (
        created.data()["key"].as_str().unwrap().to_owned(),
        created.data()["id"].as_str().unwrap().to_owned(),
    );
    let mut revoked = open(&own, &wall, "", None).await;
    own.delete(&t.key, &format!("/api/v1/api-keys/{id}"))
        .await
        .expect(200);
    loop {
        match revoked.frame(WAIT).await {
            None => break,
            Some(f) => assert!(f.event.is_none(), "an event after the revocation: {f:?}"),
        }
    }

    stop.send(()).unwrap();
    let last = loop {
        let frame = s.frame(WAIT).await.expect("a retry before the end");
        if frame.retry.is_some() {
            break frame;
        }
    };
    assert_eq!(last.retry, Some(1000));
    assert_eq!(s.frame(WAIT).await, None, "the stream ends after the retry");
    tokio::time::timeout(WAIT, server)
        .await
        .expect("the drain ends with the streams closed")
        .unwrap()
        .unwrap();
}

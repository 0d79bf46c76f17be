//! The outbox: events committed while no relay can publish them are published once each when one
//! can, a row published twice (a relay that died between publishing and deleting) is stored
//! once by JetStream's de-duplication, and acks lost in flight delay a batch by one ack timeout.

use std::time::Duration;

use clokio_bus::ServiceName;
use clokio_bus::types::Plan;
use clokio_tests::{Stack, json};
use sqlx::Connection;

#[tokio::test]
async fn events_committed_while_the_relay_is_down_arrive_once_each() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    let mut first = stack.isolated_attendance_svc();
    stack.wait_for_replicas(ServiceName::Attendance, 1).await;
    let gw = stack.start_gateway().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    for i in 0..10 {
        gw.create_employee(&t.key, "Worker", json!({"employee_code": format!("W-{i}")}))
            .await;
    }
    let prefix = stack.bus_config.subjects.prefix().to_string();
    let org_subjects = format!("{prefix}.events.attendance.{}.%", t.org.id);

    // Hold the relay's lock from another session: writes commit, nothing can be published.
    let mut holder = sqlx::PgConnection::connect(&clokio_tests::database_url())
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtext('attendance.outbox.' || $1))")
        .bind(&prefix)
        .execute(&mut holder)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        let res = gw
            .post(
                &t.key,
                "/api/v1/attendance/clock-in",
                &json!({"nip": format!("W-{i}")}),
            )
            .await
            .expect(200);
        ids.push(res.data()["attendance_id"].as_i64().unwrap());
    }
    let db = clokio_tests::db().await;
    let pending = || async {
        let (n,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM attendance.outbox WHERE subject LIKE $1")
                .bind(&org_subjects)
                .fetch_one(&db)
                .await
                .unwrap();
        n
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(pending().await, 10, "committed, not yet published");

    // The replica dies with its events unpublished; the lock goes away; a new replica starts.
    first.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(holder);
    let mut events = stack
        .events(stack.bus_config.subjects.event("attendance", t.org.id, ">"))
        .await;
    assert!(
        events.none_within(Duration::from_millis(300)).await,
        "nothing was published while the lock was held"
    );
    stack.start_attendance_svc().await;
    let mut got = Vec::new();
    for _ in 0..10 {
        let e = events.next().await;
        assert_eq!(e.msg_id, e.body["id"].as_str().unwrap());
        got.push((
            e.body["data"]["attendance_id"].as_i64().unwrap(),
            e.msg_id,
            e.subject,
            e.body,
        ));
    }
    assert!(events.none_within(Duration::from_millis(500)).await);
    let mut published: Vec<i64> = got.iter().map(|g| g.0).collect();
    published.sort_unstable();
    ids.sort_unstable();
    assert_eq!(published, ids, "every committed clock-in, once");
    for _ in 0..50 {
        if pending().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending().await, 0);

    // A relay that published and died before deleting the row publishes it again: stored once.
    let (_, id, subject, body) = &got[0];
    sqlx::query("INSERT INTO attendance.outbox (event_id, subject, payload) VALUES ($1, $2, $3)")
        .bind(id.parse::<uuid::Uuid>().unwrap())
        .bind(subject)
        .bind(serde_json::to_vec(body).unwrap())
        .execute(&db)
        .await
        .unwrap();
    for _ in 0..50 {
        if pending().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending().await, 0, "the republished row was relayed");
    assert!(
        events.none_within(Duration::from_millis(1000)).await,
        "JetStream dropped the duplicate"
    );
}

/// Publish acks lost in flight (NATS went away after taking the messages) are waited out together,
/// not one after another: a batch of ten whose acks never come is retried after one ack timeout
/// (5 s), not ten (50 s), and its rows are published and deleted then.
#[tokio::test]
async fn a_batch_whose_acks_are_lost_is_retried_after_one_timeout() {
    use futures::StreamExt;

    let (stack, _gw) = Stack::start().await;
    let prefix = stack.bus_config.subjects.prefix().to_string();
    let subjects = format!("{prefix}.silent.>");
    // A subscriber that never answers: each publish is taken and its ack never comes.
    let mut silent = stack.nats.subscribe(subjects.clone()).await.unwrap();
    stack.nats.flush().await.unwrap();
    let pool = stack.db().await;
    sqlx::query(
        "INSERT INTO employee.outbox (event_id, subject, payload) \
         SELECT gen_random_uuid(), $1 || '.silent.' || i, '{}' FROM generate_series(1, 10) AS i",
    )
    .bind(&prefix)
    .execute(&pool)
    .await
    .unwrap();
    // The relay polls every second; the ten go out in one batch.
    for _ in 0..10 {
        tokio::time::timeout(Duration::from_secs(5), silent.next())
            .await
            .expect("the relay published the batch")
            .unwrap();
    }
    let in_flight = std::time::Instant::now();
    // From now on JetStream stores them, so the retry is acknowledged.
    drop(silent);
    let js = async_nats::jetstream::new(stack.nats.clone());
    let stream = format!("{prefix}-SILENT");
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![subjects],
        ..Default::default()
    })
    .await
    .unwrap();
    let left = loop {
        let (left,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM employee.outbox WHERE starts_with(subject, $1 || '.silent.')",
        )
        .bind(&prefix)
        .fetch_one(&pool)
        .await
        .unwrap();
        if left == 0 || in_flight.elapsed() > Duration::from_secs(20) {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stored = js
        .get_stream(&stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    js.delete_stream(&stream).await.unwrap();
    assert_eq!(
        left,
        0,
        "rows left {:?} after the batch",
        in_flight.elapsed()
    );
    assert_eq!(stored, 10, "each row stored once");
}

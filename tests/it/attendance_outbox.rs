//! The outbox: events committed while no relay can publish them are published once each when one
//! can, and a row published twice (a relay that died between publishing and deleting) is stored
//! once by JetStream's de-duplication.

use std::time::Duration;

use clokio_bus::ServiceName;
use clokio_bus::types::Plan;
use clokio_testkit::{Stack, json};
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
    let mut holder = sqlx::PgConnection::connect(&clokio_testkit::database_url())
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
    let db = clokio_testkit::db().await;
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

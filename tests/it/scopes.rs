//! Scoped and expiring keys: a kiosk key can only clock, a read-only key can only read, a key
//! cannot grant what it does not hold, an expired key is an invalid key, and a key's use is
//! written at most once a minute.

use std::time::{Duration, Instant};

use chrono::Utc;
use clokio_bus::ops::{KeyTouch, KeyTouchOp, KeyUse};
use clokio_bus::types::Plan;
use clokio_tests::{Stack, json};

#[tokio::test]
async fn a_kiosk_key_only_clocks_and_a_read_only_key_only_reads() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    gw.create_employee(&t.key, "Ann", json!({"employee_code": "E-1"}))
        .await;
    let kiosk = gw
        .post(
            &t.key,
            "/api/v1/api-keys",
            &json!({"name": "Lobby", "preset": "kiosk"}),
        )
        .await
        .expect(201);
    assert_eq!(kiosk.data()["scopes"], json!(["attendance:write"]));
    assert!(kiosk.data()["expires_at"].is_null());
    let kiosk = kiosk.data()["key"].as_str().unwrap().to_owned();
    let reader = gw
        .post(
            &t.key,
            "/api/v1/api-keys",
            &json!({"name": "Payroll", "preset": "read-only"}),
        )
        .await
        .expect(201);
    assert_eq!(
        reader.data()["scopes"],
        json!([
            "attendance:read",
            "employees:read",
            "reports:read",
            "events:read"
        ])
    );
    let reader = reader.data()["key"].as_str().unwrap().to_owned();

    gw.clock_in(&kiosk, "E-1").await.expect(200);
    for (path, scope) in [
        ("/api/v1/employees", "employees:read"),
        (
            "/api/v1/attendance/daily?date=2026-01-05",
            "attendance:read",
        ),
        (
            "/api/v1/attendance/summary?month=1&year=2026",
            "reports:read",
        ),
        ("/api/v1/webhooks", "webhooks:manage"),
        ("/api/v1/api-keys", "keys:manage"),
    ] {
        gw.get(&kiosk, path).await.expect_error(
            403,
            &format!("This API key does not have the {scope} scope"),
        );
    }
    gw.post(&kiosk, "/api/v1/api-keys", &json!({"name": "more"}))
        .await
        .expect_error(403, "This API key does not have the keys:manage scope");

    gw.get(&reader, "/api/v1/employees").await.expect(200);
    gw.get(&reader, "/api/v1/attendance/daily?date=2026-01-05")
        .await
        .expect(200);
    gw.get(&reader, "/api/v1/organization").await.expect(200);
    gw.clock_out(&reader, "E-1")
        .await
        .expect_error(403, "This API key does not have the attendance:write scope");
    gw.patch(&reader, "/api/v1/organization", &json!({"name": "Renamed"}))
        .await
        .expect_error(403, "This API key does not have the settings:manage scope");
    // A refused call changed nothing: Ann is still clocked in.
    let today = gw
        .get(&t.key, "/api/v1/attendance/employee/E-1/today")
        .await
        .expect(200);
    assert!(today.text.contains("clock_in"), "{}", today.text);

    // The list shows each key's scopes and expiry.
    let list = gw.get(&t.key, "/api/v1/api-keys").await.expect(200);
    let keys = list.data().as_array().unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0]["scopes"].as_array().unwrap().len(), 10);
    assert_eq!(keys[1]["scopes"], json!(["attendance:write"]));
    assert!(keys.iter().all(|k| k["expires_at"].is_null()));
}

#[tokio::test]
async fn a_key_grants_only_what_it_holds_and_bad_scopes_are_refused() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let manager = gw
        .post(
            &t.key,
            "/api/v1/api-keys",
            &json!({"name": "Key manager", "scopes": ["keys:manage", "attendance:read"]}),
        )
        .await
        .expect(201);
    let manager = manager.data()["key"].as_str().unwrap().to_owned();
    gw.post(
        &manager,
        "/api/v1/api-keys",
        &json!({"name": "Reader", "scopes": ["attendance:read"]}),
    )
    .await
    .expect(201);
    for body in [
        json!({"name": "Clock", "scopes": ["attendance:read", "attendance:write"]}),
        json!({"name": "Kiosk", "preset": "kiosk"}),
        json!({"name": "Everything"}),
    ] {
        gw.post(&manager, "/api/v1/api-keys", &body)
            .await
            .expect_error(403, "This API key does not have the attendance:write scope");
    }
    for (body, message) in [
        (
            json!({"name": "x", "scopes": ["root"]}),
            "The scopes field has an unknown scope: root. Scopes are attendance:read, \
             attendance:write, employees:read, employees:write, reports:read, leave:write, \
             webhooks:manage, keys:manage, settings:manage, events:read",
        ),
        (
            json!({"name": "x", "scopes": []}),
            "The scopes field must name at least one scope",
        ),
        (
            json!({"name": "x", "scopes": ["attendance:read"], "preset": "kiosk"}),
            "Give either scopes or preset, not both",
        ),
        (
            json!({"name": "x", "preset": "admin"}),
            "The preset field must be full, kiosk or read-only",
        ),
        (
            json!({"name": "x", "scopes": "attendance:read"}),
            "The scopes field must be an array",
        ),
        (
            json!({"name": "x", "expires_at": "2020-01-01T00:00:00Z"}),
            "The expires_at field must be a time in the future",
        ),
        (
            json!({"name": "x", "expires_at": " "}),
            "The expires_at field must be a valid RFC 3339 date-time (e.g. 2026-02-12T08:55:12Z)",
        ),
        (
            json!({"name": "x", "expires_at": "tomorrow"}),
            "The expires_at field must be a valid RFC 3339 date-time (e.g. 2026-02-12T08:55:12Z)",
        ),
    ] {
        gw.post(&t.key, "/api/v1/api-keys", &body)
            .await
            .expect_error(422, message);
    }
    // Only the two keys made above exist beside the tenant's.
    let list = gw.get(&t.key, "/api/v1/api-keys").await.expect(200);
    assert_eq!(list.data().as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn an_expired_key_is_an_invalid_key_even_from_the_cache() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let expires_at = Utc::now() + chrono::Duration::seconds(2);
    let created = gw
        .post(
            &t.key,
            "/api/v1/api-keys",
            &json!({"name": "Temp", "expires_at": expires_at.to_rfc3339()}),
        )
        .await
        .expect(201);
    assert_eq!(
        created.data()["expires_at"]
            .as_str()
            .map(|s| s.parse::<chrono::DateTime<Utc>>().unwrap()),
        Some(expires_at)
    );
    let key = created.data()["key"].as_str().unwrap().to_owned();
    // Cached by the gateway while it is valid...
    gw.get(&key, "/api/v1/employees").await.expect(200);
    // ...and refused once its time has passed, without waiting for the cache to expire.
    let started = Instant::now();
    loop {
        let sent = Utc::now();
        let res = gw.get(&key, "/api/v1/employees").await;
        if res.status == 401 {
            res.expect_error(401, "Invalid API key");
            break;
        }
        assert_eq!(res.status, 200);
        // Accepted only if asked before the expiry (the gateway checks when the request comes).
        assert!(sent < expires_at, "accepted after its expiry");
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A gateway that never saw it refuses it too (employee-svc does not verify it).
    let mut stack = stack;
    let gw2 = stack.start_gateway().await;
    gw2.get(&key, "/api/v1/employees")
        .await
        .expect_error(401, "Invalid API key");
}

/// `last_used_at` is written at most once a minute per key, whatever the gateways report.
#[tokio::test]
async fn key_use_is_written_at_most_once_a_minute() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let db = stack.db().await;
    let key_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM employee.api_keys WHERE org_id = $1")
            .bind(t.org.id.as_uuid())
            .fetch_one(&db)
            .await
            .unwrap();
    sqlx::query("UPDATE employee.api_keys SET last_used_at = NULL WHERE id = $1")
        .bind(key_id)
        .execute(&db)
        .await
        .unwrap();
    let first = Utc::now() + chrono::Duration::hours(1);
    let last_used = || async {
        sqlx::query_scalar::<_, Option<chrono::DateTime<Utc>>>(
            "SELECT last_used_at FROM employee.api_keys WHERE id = $1",
        )
        .bind(key_id)
        .fetch_one(&db)
        .await
        .unwrap()
        .map(|t| t.timestamp_micros())
    };
    let touch = |at: chrono::DateTime<Utc>| {
        let bus = stack.bus.clone();
        async move {
            bus.call::<KeyTouchOp>(&KeyTouch {
                uses: vec![KeyUse {
                    key_id: clokio_bus::ids::ApiKeyId::from_uuid(key_id),
                    at,
                }],
            })
            .await
        }
    };
    touch(first).await.unwrap();
    assert_eq!(last_used().await, Some(first.timestamp_micros()));
    touch(first + chrono::Duration::seconds(59)).await.unwrap();
    assert_eq!(
        last_used().await,
        Some(first.timestamp_micros()),
        "written twice in a minute"
    );
    let later = first + chrono::Duration::seconds(60);
    touch(later).await.unwrap();
    assert_eq!(last_used().await, Some(later.timestamp_micros()));
}

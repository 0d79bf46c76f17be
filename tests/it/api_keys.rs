use std::time::{Duration, Instant};

use clokio_bus::key::ApiKey;
use clokio_bus::types::Plan;
use clokio_testkit::{Stack, json};

#[tokio::test]
async fn create_list_use_and_revoke_keys() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let res = gw
        .post(
            &t.key,
            "/api/v1/api-keys",
            &json!({"name": "Payroll Integration"}),
        )
        .await
        .expect(201);
    assert_eq!(res.message(), "API key created successfully");
    let new_key = res.data()["key"].as_str().unwrap().to_owned();
    assert!(ApiKey::parse(&new_key).is_some(), "{new_key}");
    let id = res.data()["id"].as_str().unwrap().to_owned();
    assert_eq!(res.data()["hint"], format!("clk_…{}", &new_key[32..]));

    // The new key works, and the list shows hints only.
    gw.get(&new_key, "/api/v1/employees").await.expect(200);
    let list = gw.get(&t.key, "/api/v1/api-keys").await.expect(200);
    let keys = list.data().as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        !list.text.contains(&new_key[4..]),
        "a secret leaked into the list"
    );
    assert!(
        !list.text.contains(&t.key[4..]),
        "a secret leaked into the list"
    );
    assert!(keys.iter().all(|k| k.get("key").is_none()));
    assert_eq!(keys[1]["name"], "Payroll Integration");
    assert!(keys[1]["revoked_at"].is_null());

    let res = gw
        .delete(&t.key, &format!("/api/v1/api-keys/{id}"))
        .await
        .expect(200);
    assert_eq!(res.message(), "API key revoked successfully");
    assert!(res.data()["revoked_at"].is_string());
    gw.get(&new_key, "/api/v1/employees")
        .await
        .expect_error(401, "Invalid API key");
    gw.delete(&t.key, &format!("/api/v1/api-keys/{id}"))
        .await
        .expect_error(409, "API key is already revoked");
    gw.delete(
        &t.key,
        &format!("/api/v1/api-keys/{}", uuid::Uuid::new_v4()),
    )
    .await
    .expect_error(404, "API key not found");
    gw.delete(&t.key, "/api/v1/api-keys/not-a-uuid")
        .await
        .expect_error(404, "API key not found");
    gw.post(&t.key, "/api/v1/api-keys", &json!({}))
        .await
        .expect_error(422, "The name field is required");
    // The original key is untouched.
    gw.get(&t.key, "/api/v1/employees").await.expect(200);
}

#[tokio::test]
async fn a_revoked_key_fails_on_another_gateway_within_a_second() {
    let (mut stack, gw1) = Stack::start().await;
    let gw2 = stack.start_gateway().await;
    let t = stack.tenant(&gw1, Plan::Pro).await;
    let created = gw1
        .post(&t.key, "/api/v1/api-keys", &json!({"name": "kiosk"}))
        .await
        .expect(201);
    let key = created.data()["key"].as_str().unwrap().to_owned();
    let id = created.data()["id"].as_str().unwrap().to_owned();
    // gw2 now holds the key in its cache.
    gw2.get(&key, "/api/v1/employees").await.expect(200);
    gw2.get(&key, "/api/v1/employees").await.expect(200);

    gw1.delete(&t.key, &format!("/api/v1/api-keys/{id}"))
        .await
        .expect(200);
    let revoked_at = Instant::now();
    loop {
        let res = gw2.get(&key, "/api/v1/employees").await;
        if res.status == 401 {
            break;
        }
        assert_eq!(res.status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "gw2 still accepts the revoked key after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

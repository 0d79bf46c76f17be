use std::time::{Duration, Instant};

use clokio_bus::events::kind;
use clokio_bus::key::ApiKey;
use clokio_bus::ops::{KeyCreate, KeyCreateOp, KeyRevoke, KeyRevokeOp};
use clokio_bus::scope::Scopes;
use clokio_bus::types::Plan;
use clokio_tests::{LinkedNats, Stack, json};

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

/// An organization holds at most 50 live keys, however many are asked for at once; a revoked or
/// expired key frees its place. (A leaked key can mint keys; this bounds what it leaves behind.)
#[tokio::test]
async fn an_organization_holds_at_most_fifty_live_keys() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Enterprise).await;
    // The tenant's own key, 45 more, and one that has expired (it does not count).
    for i in 0..45 {
        gw.post(
            &t.key,
            "/api/v1/api-keys",
            &json!({"name": format!("K{i}")}),
        )
        .await
        .expect(201);
    }
    let db = stack.db().await;
    sqlx::query(
        "INSERT INTO employee.api_keys (id, org_id, name, key_hash, hint, scopes, expires_at) \
         SELECT gen_random_uuid(), org_id, 'expired', encode(sha256(gen_random_uuid()::text::bytea), 'hex'), \
                hint, scopes, \
                now() - interval '1 day' \
         FROM employee.api_keys WHERE org_id = $1 LIMIT 1",
    )
    .bind(t.org.id.as_uuid())
    .execute(&db)
    .await
    .unwrap();
    // 46 live: room for four, eight asked for at once.
    let bodies: Vec<_> = (0..8).map(|i| json!({"name": format!("R{i}")})).collect();
    let racing = futures::future::join_all(
        bodies
            .iter()
            .map(|b| gw.post(&t.key, "/api/v1/api-keys", b)),
    )
    .await;
    let mut statuses: Vec<u16> = racing.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 201, 201, 201, 422, 422, 422, 422]);
    let refused = racing.iter().find(|r| r.status == 422).unwrap();
    assert_eq!(
        refused.message(),
        "An organization may have at most 50 active API keys; revoke one first"
    );
    let live = |db: sqlx::PgPool| async move {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM employee.api_keys WHERE org_id = $1 AND revoked_at IS NULL \
               AND (expires_at IS NULL OR expires_at > now())",
        )
        .bind(t.org.id.as_uuid())
        .fetch_one(&db)
        .await
        .unwrap();
        n
    };
    assert_eq!(live(db.clone()).await, 50);

    // Revoking one makes room for one.
    let id = racing.iter().find(|r| r.status == 201).unwrap().data()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    gw.delete(&t.key, &format!("/api/v1/api-keys/{id}"))
        .await
        .expect(200);
    gw.post(&t.key, "/api/v1/api-keys", &json!({"name": "after"}))
        .await
        .expect(201);
    gw.post(&t.key, "/api/v1/api-keys", &json!({"name": "one too many"}))
        .await
        .expect(422);
    assert_eq!(live(db).await, 50);
}

/// A revocation published while the routes between the gateway's NATS server and the others are
/// down (the gateway's own connection stays up, so nothing tells it) still reaches the gateway
/// once they are back, well before the cache's 60 s TTL would end the key.
#[tokio::test]
async fn a_revocation_sent_while_routes_are_down_reaches_the_gateway_when_they_heal() {
    let nats = LinkedNats::start().await;
    let mut stack = Stack::on(nats.hub_url(), Duration::from_secs(5)).await;
    stack.start_employee_svc().await;
    let mut config = stack.gateway_config();
    config.bus.nats_url = nats.edge.url();
    assert_eq!(config.auth_cache_ttl, Duration::from_secs(60));
    let gw = stack.start_gateway_with(config).await;
    let org = stack.create_org(Plan::Pro, None, "UTC").await;
    let created = stack
        .bus
        .call::<KeyCreateOp>(&KeyCreate {
            org_id: org.id,
            name: "kiosk".to_owned(),
            scopes: Scopes::FULL,
            expires_at: None,
        })
        .await
        .expect("key created");
    // The gateway now holds the key in its cache.
    gw.get(&created.key, "/api/v1/api-keys").await.expect(200);

    nats.links(false).await;
    let mut revocations = stack
        .events(
            stack
                .bus
                .subjects()
                .event(kind::APIKEY, org.id, kind::REVOKED),
        )
        .await;
    stack
        .bus
        .call::<KeyRevokeOp>(&KeyRevoke {
            org_id: org.id,
            key_id: created.id,
        })
        .await
        .expect("key revoked");
    let event = revocations.next().await;
    assert_eq!(event.body["data"]["key_id"], created.id.to_string());
    // The gateway, cut off from the hub, still answers from its cache (then fails to forward).
    let res = gw.get(&created.key, "/api/v1/api-keys").await;
    assert_ne!(res.status, 401, "{:?}", res.body);

    nats.links(true).await;
    let healed = Instant::now();
    loop {
        let res = gw.get(&created.key, "/api/v1/api-keys").await;
        if res.status == 401 {
            eprintln!(
                "the revoked key was refused {} ms after the routes came back",
                healed.elapsed().as_millis()
            );
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(20),
            "the gateway still accepts the revoked key 20 s after the routes came back ({}: {:?})",
            res.status,
            res.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

use clokio_bus::types::Plan;
use clokio_testkit::{Stack, json};

/// Org B's key with org A's identifiers: nothing of A is visible or changeable.
#[tokio::test]
async fn one_org_can_neither_see_nor_change_another() {
    let (stack, gw) = Stack::start().await;
    let a = stack.tenant(&gw, Plan::Pro).await;
    let b = stack.tenant(&gw, Plan::Pro).await;
    gw.post(
        &a.key,
        "/api/v1/locations",
        &json!({"name": "A Only HQ", "latitude": 1, "longitude": 1, "radius_meters": 50}),
    )
    .await
    .expect(201);
    let emp = gw
        .create_employee(&a.key, "Alice", json!({"employee_code": "A-1"}))
        .await;
    let a_keys = gw.get(&a.key, "/api/v1/api-keys").await.expect(200);
    let a_key_id = a_keys.data()[0]["id"].as_str().unwrap().to_owned();

    // Reads.
    let res = gw.get(&b.key, "/api/v1/employees").await.expect(200);
    assert_eq!(res.data(), &json!([]));
    let res = gw.get(&b.key, "/api/v1/locations").await.expect(200);
    assert_eq!(
        res.data().as_array().unwrap().len(),
        1,
        "B sees only its own Main Office"
    );
    let res = gw.get(&b.key, "/api/v1/api-keys").await.expect(200);
    assert_ne!(res.data()[0]["id"], a_key_id.as_str());
    let res = gw.get(&b.key, "/api/v1/organization").await.expect(200);
    assert_eq!(res.data()["id"], b.org.id.to_string());

    // Writes aimed at A's identifiers.
    gw.patch(
        &b.key,
        "/api/v1/employees/A-1/status",
        &json!({"status": "inactive"}),
    )
    .await
    .expect_error(404, "Employee not found");
    gw.delete(&b.key, &format!("/api/v1/api-keys/{a_key_id}"))
        .await
        .expect_error(404, "API key not found");
    gw.post(
        &b.key,
        "/api/v1/employees",
        &json!({"name": "Mallory", "email": "m@b.com", "location": "A Only HQ"}),
    )
    .await
    .expect_error(422, "The selected location is invalid");
    // The same code and email are free in B: uniqueness is per org.
    let same = gw
        .create_employee(
            &b.key,
            "Bob",
            json!({"employee_code": "A-1", "email": emp["email"].clone()}),
        )
        .await;
    assert_eq!(same["employee_code"], "A-1");

    // A is unchanged.
    let res = gw.get(&a.key, "/api/v1/employees").await.expect(200);
    assert_eq!(res.data().as_array().unwrap().len(), 1);
    assert_eq!(res.data()[0]["status"], "active");
    assert_eq!(res.data()[0]["name"], "Alice");
    gw.get(&a.key, "/api/v1/organization").await.expect(200);
}

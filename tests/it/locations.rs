use clokio_bus::types::Plan;
use clokio_tests::{Stack, json};

#[tokio::test]
async fn create_list_and_validate_locations() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let res = gw
        .post(&t.key, "/api/v1/locations", &json!({"name": "Warehouse", "latitude": -33.9, "longitude": 151.2, "radius_meters": 75.5}))
        .await
        .expect(201);
    assert_eq!(res.message(), "Location created successfully");
    assert_eq!(res.data()["name"], "Warehouse");
    assert_eq!(res.data()["radius_meters"], 75.5);
    let list = gw.get(&t.key, "/api/v1/locations").await.expect(200);
    let names: Vec<&str> = list
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Main Office", "Warehouse"]);

    let base = json!({"name": "X", "latitude": 0, "longitude": 0, "radius_meters": 10});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = vec![
        (
            with("name", json!("Main Office")),
            "The name has already been taken",
        ),
        (with("name", json!(null)), "The name field is required"),
        (
            with("latitude", json!(90.5)),
            "The latitude field must be between -90 and 90",
        ),
        (
            with("longitude", json!(-180.01)),
            "The longitude field must be between -180 and 180",
        ),
        (
            with("latitude", json!("12")),
            "The latitude field must be a number",
        ),
        (
            with("radius_meters", json!(0)),
            "The radius_meters field must be greater than 0 and at most 100000",
        ),
        (
            with("radius_meters", json!(-5)),
            "The radius_meters field must be greater than 0 and at most 100000",
        ),
        (
            json!({"name": "Y", "latitude": 1, "longitude": 1}),
            "The radius_meters field is required",
        ),
    ];
    for (body, message) in cases {
        gw.post(&t.key, "/api/v1/locations", &body)
            .await
            .expect_error(422, message);
    }
    let list = gw.get(&t.key, "/api/v1/locations").await.expect(200);
    assert_eq!(list.data().as_array().unwrap().len(), 2);
}

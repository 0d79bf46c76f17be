use clokio_bus::types::Plan;
use clokio_tests::{Stack, json};

#[tokio::test]
async fn read_defaults_and_update_settings() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let res = gw.get(&t.key, "/api/v1/organization").await.expect(200);
    let org = res.data();
    assert_eq!(org["id"], t.org.id.to_string());
    assert_eq!(org["plan"], "pro");
    assert_eq!(org["timezone"], "UTC");
    assert_eq!(
        org["settings"],
        json!({
            "work_days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "schedule": {"start": "09:00", "hours_per_day": 8.0, "late_grace_minutes": 10},
            "holidays": [],
            "offline_backdate_hours": 72,
            "max_shift_hours": 16,
            "rounding": null,
            "break_rules": []
        })
    );

    let res = gw
        .patch(
            &t.key,
            "/api/v1/organization",
            &json!({
                "timezone": "Europe/Berlin",
                "work_days": ["sunday", "monday", "tuesday", "wednesday", "thursday", "monday"],
                "schedule": {"start": "08:30", "late_grace_minutes": 5},
                "holidays": ["2026-12-25", "2026-12-24", "2026-12-25"],
                "offline_backdate_hours": 24
            }),
        )
        .await
        .expect(200);
    assert_eq!(res.message(), "Organization updated successfully");
    let again = gw.get(&t.key, "/api/v1/organization").await.expect(200);
    for org in [res.data(), again.data()] {
        assert_eq!(org["timezone"], "Europe/Berlin");
        assert_eq!(
            org["settings"],
            json!({
                "work_days": ["monday", "tuesday", "wednesday", "thursday", "sunday"],
                "schedule": {"start": "08:30", "hours_per_day": 8.0, "late_grace_minutes": 5},
                "holidays": ["2026-12-24", "2026-12-25"],
                "offline_backdate_hours": 24,
                "max_shift_hours": 16,
                "rounding": null,
                "break_rules": []
            })
        );
    }

    // The shape GET returns is the shape PATCH takes: what was read, changed and sent back.
    let mut settings = again.data()["settings"].clone();
    settings["schedule"]["hours_per_day"] = json!(7.5);
    settings["max_shift_hours"] = json!(12);
    settings["rounding"] = json!({"minutes": 15, "mode": "nearest"});
    let res = gw
        .patch(
            &t.key,
            "/api/v1/organization",
            &json!({"timezone": "Europe/Paris", "settings": settings}),
        )
        .await
        .expect(200);
    assert_eq!(res.data()["timezone"], "Europe/Paris");
    assert_eq!(res.data()["settings"], settings);
    assert_eq!(
        gw.get(&t.key, "/api/v1/organization")
            .await
            .expect(200)
            .data()["settings"],
        settings
    );
    // A setting given both ways is refused, and changes nothing.
    gw.patch(
        &t.key,
        "/api/v1/organization",
        &json!({"max_shift_hours": 10, "settings": {"max_shift_hours": 11}}),
    )
    .await
    .expect_error(
        422,
        "The max_shift_hours field must be given either under settings or at the top level, not both",
    );
    gw.patch(&t.key, "/api/v1/organization", &json!({"settings": []}))
        .await
        .expect_error(422, "The settings field must be an object");
    assert_eq!(
        gw.get(&t.key, "/api/v1/organization")
            .await
            .expect(200)
            .data()["settings"]["max_shift_hours"],
        12
    );
}

#[tokio::test]
async fn invalid_settings_and_plan_changes_are_refused() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Basic).await;
    let cases = vec![
        (
            json!({"timezone": "Mars/Olympus"}),
            422,
            "The timezone field must be a valid IANA time zone",
        ),
        (
            json!({"work_days": ["funday"]}),
            422,
            "The work_days field must only contain days of the week (monday … sunday)",
        ),
        (
            json!({"work_days": "monday"}),
            422,
            "The work_days field must be an array",
        ),
        (
            json!({"schedule": {"start": "9am"}}),
            422,
            "The schedule.start field must be a time in HH:MM format",
        ),
        (
            json!({"schedule": {"hours_per_day": 0}}),
            422,
            "The hours_per_day field must be greater than 0 and at most 24",
        ),
        (
            json!({"holidays": ["2026-02-30"]}),
            422,
            "The holidays field must be a valid date in YYYY-MM-DD format",
        ),
        (
            json!({"offline_backdate_hours": 1000}),
            422,
            "The offline_backdate_hours field must be between 0 and 720",
        ),
        (
            json!({}),
            422,
            "The request must change at least one setting",
        ),
        (
            json!({"plan": "enterprise"}),
            403,
            "The plan can only be changed by the operator",
        ),
        (
            json!({"rate_limit_per_minute": 100000}),
            403,
            "The plan can only be changed by the operator",
        ),
    ];
    for (body, status, message) in cases {
        gw.patch(&t.key, "/api/v1/organization", &body)
            .await
            .expect_error(status, message);
    }
    let org = gw.get(&t.key, "/api/v1/organization").await.expect(200);
    assert_eq!(org.data()["plan"], "basic");
    assert_eq!(org.data()["timezone"], "UTC");
}

#[tokio::test]
async fn settings_changes_and_key_revocations_are_events_on_jetstream() {
    let (stack, gw) = Stack::start().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    gw.patch(
        &t.key,
        "/api/v1/organization",
        &json!({"timezone": "Asia/Tokyo"}),
    )
    .await
    .expect(200);
    let created = gw
        .post(&t.key, "/api/v1/api-keys", &json!({"name": "temp"}))
        .await
        .expect(201);
    let key_id = created.data()["id"].as_str().unwrap().to_owned();
    let secret = created.data()["key"].as_str().unwrap().to_owned();
    gw.delete(&t.key, &format!("/api/v1/api-keys/{key_id}"))
        .await
        .expect(200);

    let subjects = &stack.bus_config.subjects;
    let mut found = Vec::new();
    for (domain, event) in [("organization", "updated"), ("apikey", "revoked")] {
        found.push(
            stack
                .events(subjects.event(domain, t.org.id, event))
                .await
                .next()
                .await
                .body,
        );
    }
    assert_eq!(found[0]["type"], "organization.updated");
    assert_eq!(found[0]["data"]["timezone"], "Asia/Tokyo");
    assert_eq!(found[1]["type"], "apikey.revoked");
    assert_eq!(found[1]["data"]["key_id"], key_id.as_str());
    assert_eq!(
        found[1]["data"]["key_hash"],
        clokio_bus::key::KeyHash::of(&secret).as_str()
    );
    // The event carries the hash, never the key.
    assert!(!found[1].to_string().contains(&secret[4..]));
}

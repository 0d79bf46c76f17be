//! Each console page against what the public API and the database say: employees (paging,
//! search, create, validation), Today and its live stream, the monthly summary and its CSV,
//! webhooks and the delivery log, leave, settings; a service down, an admin of two
//! organizations, and the `__Host-` cookie over https.

use std::time::{Duration, Instant};

use clokio_bus::types::Plan;
use clokio_tests::{ADMIN_PASSWORD, Browser, Receiver, Stack, json, seed_employees};

use super::console::{Setup, email, setup};

/// How many employees the API lists.
async fn employee_count(s: &Setup) -> usize {
    let res = s.gw.get(&s.t.key, "/api/v1/employees").await.expect(200);
    res.data().as_array().unwrap().len()
}

/// The number of `<tr data-code=` rows of a page.
fn rows(text: &str) -> usize {
    text.matches("<tr data-code=").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn employees_are_paged_searched_and_filtered() {
    let s = setup().await;
    seed_employees(s.t.org.id, "E", 120, "2026-01-01").await;
    let mut b = s.browser().await;
    let first = b.get("/employees").await;
    first.expect(200).expect_text("121 employees · page 1 of 3");
    assert_eq!(rows(&first.text), 50);
    assert!(first.text.contains(r#"href="?page=2" rel="next""#));
    let last = b.get("/employees?page=3").await;
    assert_eq!(rows(&last.text), 21);
    assert!(last.text.contains(r#"href="?page=2" rel="prev""#));
    let found = b.get("/employees?q=e00077").await;
    assert_eq!(rows(&found.text), 1);
    found.expect_text("Employee 77").expect_text("1 employee");
    let long = "x".repeat(101);
    let res = b.get(&format!("/employees?q={long}")).await;
    res.expect(422)
        .expect_text("The search field must not be greater than 100 characters");
    assert!(
        res.text.contains(r#"id="search-error""#) && res.text.contains(&long),
        "beside the field, kept"
    );
    // Search text is matched literally, not as a pattern.
    assert_eq!(rows(&b.get("/employees?q=%25").await.text), 0);
    b.post(
        "/employees/E00077/status",
        &[("status", "inactive"), ("back", "/employees?q=e00077")],
    )
    .await
    .expect_redirect("/employees?q=e00077");
    let inactive = b.get("/employees?status=inactive").await;
    assert_eq!(rows(&inactive.text), 1);
    inactive.expect_text("Employee 77 is inactive and can no longer clock in.");
    let active = b.get("/employees?status=active&q=Employee").await;
    active.expect_text("119 employees · page 1 of 3");
    assert!(
        active
            .text
            .contains(r#"href="?q=Employee&amp;status=active&amp;page=2""#)
            || active
                .text
                .contains("q=Employee&#38;status=active&#38;page=2"),
        "filters kept in the page links"
    );
    // The API sees the same; an inactive employee cannot clock in.
    s.gw.clock_in(&s.t.key, "E00077")
        .await
        .expect_error(403, "Employee is inactive");
    b.post("/employees/E00077/status", &[("status", "active")])
        .await
        .expect_redirect("/employees");
    s.gw.clock_in(&s.t.key, "E00077").await.expect(200);
    b.post("/employees/NOPE/status", &[("status", "active")])
        .await
        .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_employee_shows_each_refusal_beside_its_field() {
    let s = setup().await;
    let mut b = s.browser().await;
    b.get("/employees/new")
        .await
        .expect(200)
        .expect_text("Main Office");
    let existing =
        s.gw.create_employee(&s.t.key, "Sam Existing", json!({}))
            .await;
    let taken = existing["email"].as_str().unwrap().to_owned();
    let before = employee_count(&s).await;
    let base = [
        ("name", "Jane Smith"),
        ("email", "jane@company.com"),
        ("location", "Main Office"),
        ("phone", "+1234567890"),
        ("position", "Software Engineer"),
        ("department", "Engineering"),
    ];
    let with = |field: &str, value: &str| -> Vec<(String, String)> {
        base.iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    if *k == field {
                        value.to_owned()
                    } else {
                        (*v).to_owned()
                    },
                )
            })
            .chain(
                (!base.iter().any(|(k, _)| *k == field))
                    .then(|| (field.to_owned(), value.to_owned())),
            )
            .collect()
    };
    for (field, value, message) in [
        ("name", " ", "The name field is required"),
        ("email", "", "The email field is required"),
        (
            "email",
            "jane@",
            "The email field must be a valid email address",
        ),
        ("email", taken.as_str(), "The email has already been taken"),
        ("location", "Nowhere", "The selected location is invalid"),
        (
            "employee_code",
            "bad code!",
            "The employee code may only contain letters, numbers, dashes and underscores",
        ),
        (
            "birthdate",
            "2026-02-30",
            "The birthdate field must be a valid date in YYYY-MM-DD format",
        ),
        (
            "birthdate",
            "2999-01-01",
            "The birthdate field must be a date before today",
        ),
        (
            "password",
            "short",
            "The password field must be at least 8 characters",
        ),
        (
            "phone",
            &"9".repeat(51),
            "The phone field must not be greater than 50 characters",
        ),
    ] {
        let form = with(field, value);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let res = b.post("/employees", &form).await;
        // Beside its field, and what was typed is kept.
        res.expect(422).expect_field_error(field, message);
        if field != "name" {
            res.expect_text("Software Engineer");
        }
        assert!(
            !res.text.contains("value=\"short\""),
            "a password is never shown again"
        );
    }
    assert_eq!(
        employee_count(&s).await,
        before,
        "no refusal stored anything"
    );

    b.post("/employees", &base)
        .await
        .expect_redirect("/employees");
    let page = b.get("/employees").await;
    page.expect_text("Jane Smith was added with employee code")
        .expect_text("Password for Jane Smith");
    assert!(page.text.contains("The password is shown only once."));
    let all = s.gw.get(&s.t.key, "/api/v1/employees").await;
    let jane = all
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["email"] == "jane@company.com")
        .unwrap()
        .clone();
    assert_eq!(jane["role"], "employee");
    assert_eq!(jane["department"], "Engineering");
    assert_eq!(jane["status"], "active");
    // The same employee code as the API would give: the org's next number.
    page.expect_text(jane["employee_code"].as_str().unwrap());
    assert!(
        !b.get("/employees")
            .await
            .text
            .contains("Password for Jane Smith")
    );
}

/// Reads the live stream until a `row` event for `code` that contains `want`.
async fn live_row(res: &mut reqwest::Response, code: &str, want: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut buf = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, res.chunk())
            .await
            .unwrap_or_else(|_| {
                panic!("no row for {code} with {want:?} within {within:?}; got {buf}")
            })
            .unwrap()
            .expect("the stream stays open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf[..end].to_owned();
            buf.drain(..end + 2);
            if event.contains("event: row") {
                let data = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                let update: serde_json::Value = serde_json::from_str(data).unwrap();
                if update["code"] == code && update["html"].as_str().unwrap().contains(want) {
                    return update["html"].as_str().unwrap().to_owned();
                }
            }
        }
    }
}

async fn open_live(s: &Setup, b: &Browser, since: Option<i64>) -> reqwest::Response {
    let url = match since {
        Some(ms) => format!("{}/attendance/live?since={ms}", s.console.url),
        None => format!("{}/attendance/live", s.console.url),
    };
    let res = reqwest::Client::new()
        .get(url)
        .header("accept", "text/event-stream")
        .header(
            "cookie",
            format!("clokio_session={}", b.cookies["clokio_session"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["cache-control"], "no-store");
    res
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn today_shows_every_active_employee_and_streams_their_changes() {
    let s = setup().await;
    s.gw.create_employee(
        &s.t.key,
        "Sarah Johnson",
        json!({"employee_code": "EMP-1042"}),
    )
    .await;
    s.gw.create_employee(&s.t.key, "Omar Off", json!({"employee_code": "EMP-2"}))
        .await;
    s.gw.patch(
        &s.t.key,
        "/api/v1/employees/EMP-2/status",
        &json!({"status": "inactive"}),
    )
    .await
    .expect(200);
    let mut b = s.browser().await;
    let page = b.get("/attendance/today").await;
    page.expect(200)
        .expect_text("Sarah Johnson")
        .expect_text("Not in");
    assert!(
        !page.text.contains("Omar Off"),
        "inactive employees are not on the board"
    );
    assert!(page.text.contains("data-live=\"/attendance/live?since="));

    let mut live = open_live(&s, &b, None).await;
    s.gw.clock_in(&s.t.key, "EMP-1042").await.expect(200);
    let row = live_row(&mut live, "EMP-1042", "Working", Duration::from_secs(5)).await;
    assert!(row.contains("data-status=\"working\""), "{row}");
    s.gw.clock(&s.t.key, "break-start", "EMP-1042")
        .await
        .expect(200);
    live_row(&mut live, "EMP-1042", "On break", Duration::from_secs(5)).await;
    s.gw.clock_out(&s.t.key, "EMP-1042").await.expect(200);
    let row = live_row(&mut live, "EMP-1042", "Clocked out", Duration::from_secs(5)).await;
    assert!(row.contains("<details class=\"sessions\">"), "{row}");

    // A board opened after its page was read gets the rows that changed in between.
    let page = b.get("/attendance/today").await;
    let since: i64 = page
        .text
        .split("live?since=")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    s.gw.clock_in(&s.t.key, "EMP-1042").await.expect(200);
    let mut late = open_live(&s, &b, Some(since)).await;
    live_row(&mut late, "EMP-1042", "Working", Duration::from_secs(5)).await;

    // Another day is the detailed view, without a live stream.
    let today = chrono::Utc::now().date_naive();
    let day = b.get(&format!("/attendance/today?date={today}")).await;
    day.expect(200)
        .expect_text(&format!("Attendance on {today}"))
        .expect_text("Sessions");
    assert!(!day.text.contains("data-live"));
    b.get("/attendance/today?date=2026-02-30")
        .await
        .expect(422)
        .expect_text("The date field must be a valid date in YYYY-MM-DD format");

    // Signing out ends the stream.
    b.post("/sign-out", &[]).await.expect_redirect("/sign-in");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, live.chunk())
            .await
            .expect("the stream ends within 5 s")
        {
            Ok(Some(c)) => text.push_str(&String::from_utf8_lossy(&c)),
            _ => break,
        }
    }
    assert!(text.contains("event: signed-out"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monthly_summary_and_its_csv_are_the_apis() {
    let s = setup().await;
    s.gw.create_employee(
        &s.t.key,
        "Sarah Johnson",
        json!({"employee_code": "EMP-1042", "department": "=cmd", "hire_date": "2026-01-01"}),
    )
    .await;
    s.gw.post(
        &s.t.key,
        "/api/v1/attendance/import",
        &json!({"records": [
            {"nip": "EMP-1042", "clock_in": "2026-02-10T08:55:00Z", "clock_out": "2026-02-10T17:32:00Z",
             "breaks": [{"start": "2026-02-10T12:00:00Z", "end": "2026-02-10T12:45:00Z"}]},
            {"nip": "EMP-1042", "clock_in": "2026-02-11T09:30:00Z", "clock_out": "2026-02-11T19:30:00Z"}
        ]}),
    )
    .await
    .expect(201);
    // reporting-svc's projection catches up.
    let started = Instant::now();
    let api = loop {
        let res =
            s.gw.get(&s.t.key, "/api/v1/attendance/summary?month=02&year=2026")
                .await
                .expect(200);
        if res.data()[0]["days_present"] == 2 {
            break res;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{}", res.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let row = &api.data()[0];
    let mut b = s.browser().await;
    let page = b.get("/reports/summary?month=2&year=2026").await;
    page.expect(200)
        .expect_text("Sarah Johnson")
        .expect_text("Export CSV");
    for value in ["total_hours", "overtime_hours"] {
        page.expect_text(&format!("{:.2}", row[value].as_f64().unwrap()));
    }
    assert!(
        page.text
            .contains(r#"<option value="2" selected>February</option>"#)
    );
    assert!(page.text.contains("<option selected>2026</option>"));
    b.get("/reports/summary?month=13&year=2026")
        .await
        .expect(422)
        .expect_text("The month field must be between 1 and 12");

    // Export CSV: byte for byte the API's, under the same name.
    let res = reqwest::Client::new()
        .get(format!(
            "{}/reports/summary.csv?month=02&year=2026",
            s.console.url
        ))
        .header(
            "cookie",
            format!("clokio_session={}", b.cookies["clokio_session"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let ours = res.bytes().await.unwrap();
    let res =
        s.gw.request(
            reqwest::Method::GET,
            Some(&s.t.key),
            "/api/v1/attendance/summary?month=02&year=2026&format=csv",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["content-disposition"].to_str().unwrap(),
        disposition
    );
    assert_eq!(
        disposition,
        "attachment; filename=\"clokio-summary-2026-02.csv\""
    );
    let theirs = res.bytes().await.unwrap();
    assert_eq!(ours, theirs);
    assert!(
        String::from_utf8_lossy(&ours).contains("'=cmd"),
        "formula-looking cells are defused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_made_tested_and_followed_in_the_delivery_log() {
    let s = setup().await;
    let receiver = Receiver::start().await;
    let url = format!("{}/hook", receiver.url);
    let mut b = s.browser().await;
    b.get("/webhooks/new")
        .await
        .expect(200)
        .expect_text("Main Office");
    let base: Vec<(&str, &str)> = vec![
        ("url", url.as_str()),
        ("platform", "slack"),
        ("events", "clock-in"),
        ("events", "clock-out"),
        ("locations", "Main Office"),
        ("days_of_week", "monday"),
        ("employees", "EMP-1, EMP-2"),
        ("departments", "Night Shift, Sales"),
        ("time_start", "22:00"),
        ("time_end", "06:00"),
        ("template", "{employee_name} {event_type}"),
        ("active", "true"),
    ];
    let without = |name: &str| {
        base.iter()
            .filter(|(k, _)| *k != name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let replace = |name: &str, value: &'static str| {
        base.iter()
            .map(|(k, v)| if *k == name { (*k, value) } else { (*k, *v) })
            .collect::<Vec<_>>()
    };
    for (form, field, message) in [
        (without("url"), "url", "The url field is required"),
        (replace("url", "ftp://example.com/x"), "url", "The url"),
        (
            without("events"),
            "events",
            "The events field must contain at least one event",
        ),
        (
            replace("template", "Hi {name}"),
            "template",
            "The template contains an unknown placeholder {name}",
        ),
        (
            without("time_end"),
            "time_range.end",
            "The time_range.end field is required (HH:MM)",
        ),
        (
            replace("time_start", "25:00"),
            "time_range.start",
            "The time_range.start field must be a time in HH:MM format",
        ),
        (
            replace("platform", "myspace"),
            "platform",
            "The selected platform is invalid",
        ),
    ] {
        let res = b.post("/webhooks", &form).await;
        res.expect(422).expect_field_error(field, message);
    }
    assert_eq!(
        s.gw.get(&s.t.key, "/api/v1/webhooks")
            .await
            .data()
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Preview without JavaScript: the form comes back with what would be sent.
    let mut preview = base.clone();
    preview.push(("action", "preview"));
    let res = b.post("/webhooks", &preview).await;
    res.expect(200)
        .expect_text("Test Employee clocked in")
        .expect_text("\"text\"");
    assert_eq!(
        s.gw.get(&s.t.key, "/api/v1/webhooks")
            .await
            .data()
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Create: the signing secret is shown once.
    let res = b.post("/webhooks", &base).await;
    let location = res.location().unwrap().to_owned();
    assert!(location.starts_with("/webhooks/"));
    let page = b.get(&location).await;
    page.expect(200)
        .expect_text("Webhook created.")
        .expect_text("Signing secret for");
    let start =
        page.text.find("id=\"revealed-secret\">").unwrap() + "id=\"revealed-secret\">".len();
    let secret = page.text[start..].split('<').next().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(!b.get(&location).await.text.contains(&secret));
    let id = location.trim_start_matches("/webhooks/").to_owned();
    let api =
        s.gw.get(&s.t.key, &format!("/api/v1/webhooks/{id}"))
            .await
            .expect(200);
    let hook = api.data();
    assert_eq!(hook["platform"], "slack");
    assert_eq!(hook["events"], json!(["clock-in", "clock-out"]));
    assert_eq!(
        hook["filters"],
        json!({
            "locations": ["Main Office"], "employees": ["EMP-1", "EMP-2"], "departments": ["Night Shift", "Sales"],
            "days_of_week": ["monday"], "time_range": {"start": "22:00", "end": "06:00"}
        })
    );
    assert_eq!(hook["template"], "{employee_name} {event_type}");
    assert_eq!(
        hook["secret_hint"],
        format!("whsec_…{}", &secret[secret.len() - 4..])
    );

    // Edit: the form shows what is stored; a cleared template goes back to the default.
    let edit = b.get(&location).await;
    assert!(
        edit.text
            .contains(r#"value="days_of_week" value="monday" checked"#)
            || edit
                .text
                .contains(r#"name="days_of_week" value="monday" checked"#)
    );
    let mut changed = replace("template", "");
    changed.retain(|(k, _)| {
        *k != "days_of_week"
            && *k != "employees"
            && *k != "departments"
            && *k != "time_start"
            && *k != "time_end"
            && *k != "locations"
    });
    changed.retain(|(k, v)| !(*k == "events" && *v == "clock-out"));
    b.post(&location, &changed).await.expect_redirect(&location);
    let hook = s.gw.get(&s.t.key, &format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(hook.data()["template"], serde_json::Value::Null);
    assert_eq!(hook.data()["events"], json!(["clock-in"]));
    assert_eq!(hook.data()["filters"]["days_of_week"], json!([]));

    // Send test: a delivery to follow, whose attempt the log shows.
    let res = b.post(&format!("{location}/test"), &[]).await;
    let delivery = res.location().unwrap().to_owned();
    assert!(delivery.starts_with(&format!("{location}/deliveries/")));
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let started = Instant::now();
    let page = loop {
        let page = b.get(&delivery).await;
        if page.text.contains("<td class=\"num\">200</td>") {
            break page;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{}", page.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    page.expect_text("succeeded")
        .expect_text(" ms")
        .expect_text("Retry now");
    let log = b.get(&format!("{location}/deliveries")).await;
    log.expect(200)
        .expect_text("Delivery Log")
        .expect_text("clock-in")
        .expect_text("succeeded");

    // Retry now: one more attempt, marked manual.
    receiver.answer([clokio_tests::Answer::status(500).body("receiver says no")]);
    b.post(&format!("{delivery}/retry"), &[])
        .await
        .expect_redirect(&delivery);
    receiver.wait_for(2, Duration::from_secs(10)).await;
    let started = Instant::now();
    loop {
        let page = b.get(&delivery).await;
        if page.text.contains("manual") && page.text.contains("receiver says no") {
            assert!(
                page.text.contains("<td class=\"num\">500</td>"),
                "{}",
                page.text
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{}", page.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Off and on, a new secret, and gone.
    b.post(&format!("{location}/active"), &[("active", "false")])
        .await
        .expect_redirect(&location);
    assert_eq!(
        s.gw.get(&s.t.key, &format!("/api/v1/webhooks/{id}"))
            .await
            .data()["active"],
        false
    );
    b.get(&location)
        .await
        .expect_text("Webhook disabled.")
        .expect_text("This webhook is off");
    b.post(&format!("{location}/active"), &[("active", "true")])
        .await
        .expect_redirect(&location);
    assert_eq!(
        s.gw.get(&s.t.key, &format!("/api/v1/webhooks/{id}"))
            .await
            .data()["active"],
        true
    );
    b.post(&format!("{location}/rotate-secret"), &[])
        .await
        .expect_redirect(&location);
    let rotated = b.get(&location).await;
    rotated.expect_text("The previous secret also signs for 24 hours.");
    assert!(!rotated.text.contains(&secret));
    b.get(&format!("{location}/delete"))
        .await
        .expect(200)
        .expect_text("Delete this webhook?");
    b.post(&format!("{location}/delete"), &[])
        .await
        .expect_redirect("/webhooks");
    s.gw.get(&s.t.key, &format!("/api/v1/webhooks/{id}"))
        .await
        .expect(404);
    b.get(&location).await.expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_is_added_listed_and_deleted() {
    let s = setup().await;
    s.gw.create_employee(
        &s.t.key,
        "Sarah Johnson",
        json!({"employee_code": "EMP-1042"}),
    )
    .await;
    let mut b = s.browser().await;
    b.get("/leave?month=3&year=2026")
        .await
        .expect(200)
        .expect_text("Leave in March 2026")
        .expect_text("No leave this month.");
    for (form, field, message) in [
        (
            vec![
                ("nip", "NOBODY"),
                ("start_date", "2026-03-02"),
                ("end_date", "2026-03-04"),
                ("type", "sick"),
            ],
            "nip",
            "Employee not found",
        ),
        (
            vec![
                ("nip", "EMP-1042"),
                ("start_date", "2026-03-05"),
                ("end_date", "2026-03-04"),
                ("type", "sick"),
            ],
            "end_date",
            "The end_date",
        ),
        (
            vec![
                ("nip", "EMP-1042"),
                ("start_date", "2026-03-32"),
                ("end_date", "2026-03-04"),
                ("type", "sick"),
            ],
            "start_date",
            "The start_date field must be a valid date in YYYY-MM-DD format",
        ),
        (
            vec![
                ("nip", "EMP-1042"),
                ("start_date", "2026-03-02"),
                ("end_date", "2026-03-04"),
                ("type", "party"),
            ],
            "type",
            "The selected type is invalid",
        ),
    ] {
        let mut form = form;
        form.extend([("month", "3"), ("year", "2026")]);
        let res = b.post("/leave", &form).await;
        res.expect(422).expect_field_error(field, message);
    }
    assert_eq!(
        s.gw.get(&s.t.key, "/api/v1/leaves?month=3&year=2026")
            .await
            .data()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    b.post(
        "/leave",
        &[
            ("nip", "EMP-1042"),
            ("start_date", "2026-03-02"),
            ("end_date", "2026-03-04"),
            ("type", "sick"),
        ],
    )
    .await
    .expect_redirect("/leave?month=3&year=2026");
    let page = b.get("/leave?month=3&year=2026").await;
    page.expect_text("Sick leave for Sarah Johnson from 2026-03-02 to 2026-03-04 recorded.");
    let leaves = s.gw.get(&s.t.key, "/api/v1/leaves?month=3&year=2026").await;
    let id = leaves.data()[0]["id"].to_string();
    assert_eq!(leaves.data()[0]["type"], "sick");
    // Overlapping another leave: the service's 409, shown with the form.
    b.post(
        "/leave",
        &[
            ("nip", "EMP-1042"),
            ("start_date", "2026-03-03"),
            ("end_date", "2026-03-05"),
            ("type", "annual"),
        ],
    )
    .await
    .expect(409);
    b.get(&format!("/leave/{id}/delete?month=3&year=2026"))
        .await
        .expect(200)
        .expect_text("Delete this leave?");
    b.post(
        &format!("/leave/{id}/delete"),
        &[("back", "month=3&year=2026")],
    )
    .await
    .expect_redirect("/leave?month=3&year=2026");
    assert_eq!(
        s.gw.get(&s.t.key, "/api/v1/leaves?month=3&year=2026")
            .await
            .data()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    b.get("/leave?month=3&year=2026")
        .await
        .expect_text("was deleted.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_locations_are_the_organizations() {
    let s = setup().await;
    let mut b = s.browser().await;
    let page = b.get("/settings").await;
    page.expect(200).expect_text("Main Office");
    assert!(page.text.contains("plan <strong>pro</strong>"));
    assert!(page.text.contains("<option selected>UTC</option>"));
    let good = vec![
        ("timezone", "Europe/Berlin"),
        ("work_days", "monday"),
        ("work_days", "tuesday"),
        ("work_days", "saturday"),
        ("schedule_start", "08:30"),
        ("hours_per_day", "7.5"),
        ("late_grace_minutes", "5"),
        ("holidays", "2026-12-25\n2026-12-26"),
        ("offline_backdate_hours", "48"),
    ];
    let with = |name: &str, value: &'static str| {
        good.iter()
            .map(|(k, v)| if *k == name { (*k, value) } else { (*k, *v) })
            .collect::<Vec<_>>()
    };
    for (form, field, message) in [
        (
            with("timezone", "Mars/Olympus"),
            "timezone",
            "The timezone field must be a valid IANA time zone",
        ),
        (
            with("hours_per_day", "25"),
            "hours_per_day",
            "The hours_per_day field must be greater than 0 and at most 24",
        ),
        (
            with("schedule_start", "8h"),
            "schedule_start",
            "The schedule.start field must be a time in HH:MM format",
        ),
        (
            with("holidays", "Christmas"),
            "holidays",
            "The holidays field must only contain dates in YYYY-MM-DD format",
        ),
        (
            with("offline_backdate_hours", "721"),
            "offline_backdate_hours",
            "The offline_backdate_hours field must be between 0 and 720",
        ),
    ] {
        let res = b.post("/settings", &form).await;
        res.expect(422).expect_field_error(field, message);
    }
    let org = s.gw.get(&s.t.key, "/api/v1/organization").await;
    assert_eq!(org.data()["timezone"], "UTC", "no refusal changed anything");
    b.post("/settings", &good)
        .await
        .expect_redirect("/settings");
    b.get("/settings").await.expect_text("Settings saved.");
    let org = s.gw.get(&s.t.key, "/api/v1/organization").await;
    let settings = &org.data()["settings"];
    assert_eq!(org.data()["timezone"], "Europe/Berlin");
    assert_eq!(
        settings["work_days"],
        json!(["monday", "tuesday", "saturday"])
    );
    assert_eq!(
        settings["schedule"],
        json!({"start": "08:30", "hours_per_day": 7.5, "late_grace_minutes": 5})
    );
    assert_eq!(settings["holidays"], json!(["2026-12-25", "2026-12-26"]));
    assert_eq!(settings["offline_backdate_hours"], 48);

    b.post(
        "/settings/locations",
        &[
            ("name", "Warehouse"),
            ("latitude", "91"),
            ("longitude", "34.8"),
            ("radius_meters", "150"),
        ],
    )
    .await
    .expect(422)
    .expect_text("The latitude field must be between -90 and 90");
    b.post(
        "/settings/locations",
        &[
            ("name", "Main Office"),
            ("latitude", "32"),
            ("longitude", "34.8"),
            ("radius_meters", "150"),
        ],
    )
    .await
    .expect(422);
    b.post(
        "/settings/locations",
        &[
            ("name", "Warehouse"),
            ("latitude", "32.1"),
            ("longitude", "34.8"),
            ("radius_meters", "150"),
        ],
    )
    .await
    .expect_redirect("/settings");
    let locations = s.gw.get(&s.t.key, "/api/v1/locations").await;
    assert_eq!(locations.data().as_array().unwrap().len(), 2);
    b.get("/employees/new").await.expect_text("Warehouse");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_down_gives_a_page_that_says_so() {
    let mut stack = Stack::empty().await;
    stack.start_employee_svc().await;
    stack.start_attendance_svc().await;
    let gw = stack.start_gateway().await;
    let console = stack.start_console().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let email = email();
    stack
        .create_admin(t.org.id, &email, "Ada", Some(ADMIN_PASSWORD))
        .await;
    let mut b = Browser::signed_in(&console, &email, ADMIN_PASSWORD).await;
    // No webhook-svc and no reporting-svc in this stack.
    for page in ["/webhooks", "/reports/summary"] {
        let res = b.get(page).await;
        res.expect(503)
            .expect_text("Service unavailable")
            .expect_text("Nothing was changed");
        assert!(!res.text.contains("\"status\""), "never a raw JSON body");
    }
    let res = b
        .post(
            "/webhooks",
            &[
                ("url", "https://example.com/x"),
                ("platform", "generic"),
                ("events", "clock-in"),
            ],
        )
        .await;
    res.expect(503);
    b.get("/employees").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_of_two_organizations_chooses_one() {
    let s = setup().await;
    let other = s.stack.tenant(&s.gw, Plan::Basic).await;
    s.stack
        .create_admin(
            other.org.id,
            &s.email,
            "Ada Elsewhere",
            Some(ADMIN_PASSWORD),
        )
        .await;
    let mut b = s.console.browser();
    b.get("/sign-in").await;
    let res = b
        .post(
            "/sign-in",
            &[("email", &s.email), ("password", ADMIN_PASSWORD)],
        )
        .await;
    res.expect(200)
        .expect_text("Choose an organization")
        .expect_text(&s.t.org.name)
        .expect_text(&other.org.name);
    assert!(
        !b.cookies.contains_key("clokio_session"),
        "no session before the choice"
    );
    let choice = res
        .text
        .split("name=\"choice\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let org = other.org.id.to_string();
    b.post("/sign-in/choose", &[("choice", &choice), ("org", &org)])
        .await
        .expect_redirect("/");
    let page = b.get("/attendance/today").await;
    page.expect(200).expect_text(&other.org.name);
    assert!(!page.text.contains(&s.t.org.name));
    // A choice is used once.
    let mut again = s.console.browser();
    again.get("/sign-in").await;
    again
        .post("/sign-in/choose", &[("choice", &choice), ("org", &org)])
        .await
        .expect_redirect("/sign-in");
    assert!(!again.cookies.contains_key("clokio_session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_cookies_are_host_only_and_secure() {
    let (mut stack, gw) = Stack::start().await;
    let mut config = stack.console_config();
    config.public_origin = Some("https://admin.example.test".to_owned());
    let console = stack.start_console_with(config).await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let email = email();
    stack
        .create_admin(t.org.id, &email, "Ada", Some(ADMIN_PASSWORD))
        .await;
    let mut b = console.browser();
    let form = b.get("/sign-in").await;
    let cookie = form.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with("__Host-clokio_signin=") && cookie.contains("; Secure"),
        "{cookie}"
    );
    let token = b.csrf.clone().unwrap();
    let fields = [
        ("_csrf", token.as_str()),
        ("email", email.as_str()),
        ("password", ADMIN_PASSWORD),
    ];
    // Its own URL is not the public origin.
    let url = console.url.clone();
    b.post_raw("/sign-in", &fields, Some(&url))
        .await
        .expect(403);
    let res = b
        .post_raw("/sign-in", &fields, Some("https://admin.example.test"))
        .await;
    res.expect_redirect("/");
    let session = res
        .set_cookie("__Host-clokio_session")
        .expect("a __Host- session cookie");
    assert!(
        session.contains("; Secure") && session.contains("Path=/") && !session.contains("Domain"),
        "{session}"
    );
    b.get("/employees").await.expect(200);
}

/// Attendance > a session: corrected and deleted with a reason, its history shown; Reports >
/// Monthly Summary: the month closed (corrections then refused) and reopened.
#[tokio::test]
async fn a_session_is_corrected_and_its_month_closed_from_the_console() {
    use chrono::Datelike;
    let s = setup().await;
    s.gw.create_employee(
        &s.t.key,
        "Sarah Johnson",
        json!({"employee_code": "EMP-1042", "hire_date": "2020-01-01"}),
    )
    .await;
    let today = chrono::Utc::now().date_naive();
    let first = (today.with_day(1).unwrap() - chrono::Duration::days(1))
        .with_day(1)
        .unwrap();
    let day = first + chrono::Duration::days(2);
    let imported = s
        .gw
        .post(
            &s.t.key,
            "/api/v1/attendance/import",
            &json!({"records": [{"nip": "EMP-1042", "clock_in": format!("{day}T09:00:00Z"),
                "clock_out": format!("{day}T17:00:00Z"),
                "breaks": [{"start": format!("{day}T12:00:00Z"), "end": format!("{day}T12:30:00Z")}]}]}),
        )
        .await
        .expect(201);
    let id = imported.data()["attendance_ids"][0].to_string();
    let path = format!("/attendance/sessions/{id}");
    let mut b = s.browser().await;

    // The day's board links each session to its page.
    let board = b.get(&format!("/attendance/today?date={day}")).await;
    board.expect(200);
    assert!(board.text.contains(&format!("href=\"{path}\"")));
    let page = b.get(&path).await;
    page.expect(200)
        .expect_text("Session of Sarah Johnson")
        .expect_text("12:00-12:30")
        .expect_text("Not corrected so far.");
    for value in [
        format!("value=\"{day}T09:00\""),
        format!("value=\"{day}T17:00\""),
    ] {
        assert!(page.text.contains(&value), "{value}");
    }

    let clock_in = format!("{day}T09:00");
    let later = format!("{day}T18:15");
    for (form, field, message) in [
        (
            vec![
                ("clock_in", clock_in.as_str()),
                ("clock_out", later.as_str()),
                ("breaks", "12:00-12:30"),
                ("reason", ""),
            ],
            "reason",
            "The reason field is required",
        ),
        (
            vec![
                ("clock_in", clock_in.as_str()),
                ("clock_out", later.as_str()),
                ("breaks", "noon"),
                ("reason", "x"),
            ],
            "breaks",
            "The breaks field must have one break per line as HH:MM-HH:MM",
        ),
        (
            vec![
                ("clock_in", clock_in.as_str()),
                ("clock_out", "tomorrow"),
                ("breaks", ""),
                ("reason", "x"),
            ],
            "clock_out",
            "The clock_out field must be a date and time",
        ),
        (
            vec![
                ("clock_in", clock_in.as_str()),
                ("clock_out", later.as_str()),
                ("breaks", "08:00-08:30"),
                ("reason", "x"),
            ],
            "breaks",
            "A break must lie inside its session",
        ),
    ] {
        b.post(&path, &form)
            .await
            .expect(422)
            .expect_field_error(field, message);
    }
    let api = format!("/api/v1/attendance/sessions/{id}");
    assert_eq!(s.gw.get(&s.t.key, &api).await.data()["revision"], 1);

    b.post(
        &path,
        &[
            ("clock_in", clock_in.as_str()),
            ("clock_out", later.as_str()),
            ("breaks", "12:00-12:45"),
            ("reason", "Stayed for the late delivery"),
        ],
    )
    .await
    .expect_redirect(&path);
    let page = b.get(&path).await;
    page.expect_text(&format!(
        "The session of Sarah Johnson on {day} was corrected."
    ))
    .expect_text("Stayed for the late delivery")
    .expect_text("Ada Admin")
    .expect_text(&format!("{day} 09:00–17:00, breaks 12:00–12:30"))
    .expect_text(&format!("{day} 09:00–18:15, breaks 12:00–12:45"));
    let session = s.gw.get(&s.t.key, &api).await.expect(200);
    assert_eq!(session.data()["clock_out"], format!("{day}T18:15:00Z"));
    assert_eq!(session.data()["break_minutes"], 45);
    let history =
        s.gw.get(&s.t.key, &format!("{api}/history"))
            .await
            .expect(200);
    assert_eq!(history.data()[0]["by"]["kind"], "admin");
    assert_eq!(history.data()[0]["by"]["name"], "Ada Admin");

    // Reports > Monthly Summary: close the month; a correction in it is then refused.
    let (m, y) = (first.month().to_string(), first.year().to_string());
    let period = first.format("%Y-%m").to_string();
    let summary = format!("/reports/summary?month={m}&year={y}");
    b.get(&summary)
        .await
        .expect(200)
        .expect_text(&format!("Close {period}"));
    b.post(
        "/reports/summary/close",
        &[("month", m.as_str()), ("year", y.as_str())],
    )
    .await
    .expect_redirect(&summary);
    let page = b.get(&summary).await;
    page.expect_text("is closed for payroll")
        .expect_text("Closed for payroll on")
        .expect_text(&format!("Reopen {period}"));
    let periods = s.gw.get(&s.t.key, "/api/v1/periods").await.expect(200);
    assert_eq!(periods.data()[0]["period"], period);
    assert_eq!(periods.data()[0]["closed_by"], "Ada Admin");
    b.post(
        &path,
        &[
            ("clock_in", clock_in.as_str()),
            ("clock_out", format!("{day}T18:30").as_str()),
            ("breaks", "12:00-12:45"),
            ("reason", "Too late"),
        ],
    )
    .await
    .expect(409)
    .expect_text(&format!("The period {period} is closed"));
    // Closing it twice is refused, and said so.
    b.post(
        "/reports/summary/close",
        &[("month", m.as_str()), ("year", y.as_str())],
    )
    .await
    .expect_redirect(&summary);
    b.get(&summary)
        .await
        .expect_text(&format!("The period {period} is already closed"));
    b.post(
        "/reports/summary/reopen",
        &[("month", m.as_str()), ("year", y.as_str())],
    )
    .await
    .expect_redirect(&summary);
    b.get(&summary)
        .await
        .expect_text("is open again")
        .expect_text(&format!("Close {period}"));

    // Deleted, with a reason; the history stays.
    b.post(&format!("{path}/delete"), &[("reason", "")])
        .await
        .expect(422)
        .expect_field_error("delete_reason", "The reason field is required");
    b.post(&format!("{path}/delete"), &[("reason", "Wrong badge")])
        .await
        .expect_redirect(&format!("/attendance/today?date={day}"));
    s.gw.get(&s.t.key, &api)
        .await
        .expect_error(404, "Attendance session not found");
    let history =
        s.gw.get(&s.t.key, &format!("{api}/history"))
            .await
            .expect(200);
    assert_eq!(history.data()[1]["action"], "deleted");
    assert_eq!(history.data()[1]["reason"], "Wrong badge");
}

/// Settings > Payroll rules: the longest shift, rounding and break rules, as the API has them.
#[tokio::test]
async fn payroll_rules_are_set_in_the_settings() {
    let s = setup().await;
    let mut b = s.browser().await;
    b.get("/settings")
        .await
        .expect(200)
        .expect_text("Payroll rules")
        .expect_text("No rounding");
    let form = |max: &'static str, minutes: &'static str, after: &'static str| {
        vec![
            ("timezone", "UTC"),
            ("work_days", "monday"),
            ("schedule_start", "09:00"),
            ("hours_per_day", "8"),
            ("late_grace_minutes", "10"),
            ("holidays", ""),
            ("offline_backdate_hours", "72"),
            ("max_shift_hours", max),
            ("rounding_minutes", minutes),
            ("rounding_mode", "up"),
            ("rule_after_0", after),
            ("rule_minutes_0", "30"),
            ("rule_after_1", "9"),
            ("rule_minutes_1", "45"),
            ("rule_after_2", ""),
            ("rule_minutes_2", ""),
        ]
    };
    b.post("/settings", &form("0", "15", "6"))
        .await
        .expect(422)
        .expect_field_error(
            "max_shift_hours",
            "The max_shift_hours field must be between 1 and 72",
        );
    b.post("/settings", &form("12", "7", "6"))
        .await
        .expect(422)
        .expect_field_error(
            "rounding_minutes",
            "The rounding.minutes field must be one of",
        );
    b.post("/settings", &form("12", "15", "x"))
        .await
        .expect(422)
        .expect_field_error("break_rules", "Each break rule needs");
    b.post("/settings", &form("12", "15", "6"))
        .await
        .expect_redirect("/settings");
    let org = s.gw.get(&s.t.key, "/api/v1/organization").await.expect(200);
    let settings = &org.data()["settings"];
    assert_eq!(settings["max_shift_hours"], 12);
    assert_eq!(settings["rounding"], json!({"minutes": 15, "mode": "up"}));
    assert_eq!(
        settings["break_rules"],
        json!([{"after_hours": 6.0, "minimum_break_minutes": 30},
            {"after_hours": 9.0, "minimum_break_minutes": 45}])
    );
    let page = b.get("/settings").await;
    for markup in [
        "<option value=\"15\" selected>15 minutes</option>",
        "<option value=\"up\" selected>up</option>",
        "aria-label=\"Rule 2: after hours\" value=\"9\"",
        "aria-label=\"Rule 1: minimum break minutes\" value=\"30\"",
    ] {
        assert!(page.text.contains(markup), "{markup}");
    }
    // No rounding, no rules.
    b.post("/settings", &form("12", "", "")).await.expect(422);
    let mut off = form("16", "", "");
    off.retain(|(k, _)| !k.starts_with("rule_"));
    off.push(("rule_after_0", ""));
    off.push(("rule_minutes_0", ""));
    b.post("/settings", &off).await.expect_redirect("/settings");
    let org = s.gw.get(&s.t.key, "/api/v1/organization").await.expect(200);
    assert_eq!(org.data()["settings"]["rounding"], serde_json::Value::Null);
    assert_eq!(org.data()["settings"]["break_rules"], json!([]));
    assert_eq!(org.data()["settings"]["max_shift_hours"], 16);
}

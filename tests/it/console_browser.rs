//! The admin console in a real browser: Debian's Chromium, headless, driven over WebDriver by
//! chromedriver (both installed by `deploy/local/test.sh`). A person's afternoon: sign in with the
//! keyboard, create a key and call the gateway with it, revoke it, add an employee, watch Today
//! change without a reload when they clock in through the API, subscribe a webhook and find its
//! delivery in the log, export the monthly CSV and compare it with the API's, sign out and press
//! Back. Each page's screenshot goes to `docs/console/` (see docs/console.md). Bounded in time.

use std::path::PathBuf;

use chrono::Datelike;
use std::time::{Duration, Instant};

use clokio_bus::types::Plan;
use clokio_tests::{ADMIN_PASSWORD, Receiver, Stack, free_port, json};
use fantoccini::{Client, ClientBuilder, Locator};

/// chromedriver and the browser session it drives; both end when dropped.
struct Chrome {
    client: Option<Client>,
    driver: std::process::Child,
    profile: PathBuf,
    pub downloads: PathBuf,
}

impl Chrome {
    async fn start() -> Self {
        let driver_bin = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("chromedriver: install Debian's chromium and chromium-driver (deploy/local/test.sh does)");
        let port = free_port();
        let driver = std::process::Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base =
            std::env::temp_dir().join(format!("clokio-chrome-{}", uuid::Uuid::new_v4().simple()));
        let (profile, downloads) = (base.join("profile"), base.join("downloads"));
        std::fs::create_dir_all(&downloads).unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    "--window-size=1280,900", format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                }
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(err) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(20),
                        "no browser session: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Self {
            client: Some(client),
            driver,
            profile: base,
            downloads,
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    async fn stop(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Saves the whole page as `docs/console/<name>.png`.
async fn screenshot(c: &Client, name: &str) {
    screenshot_in(c, "console", name).await;
}

/// Saves the whole page as `docs/<folder>/<name>.png` (the window grows to the page's height for
/// the picture, then goes back).
async fn screenshot_in(c: &Client, folder: &str, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    let (width, height) = c.get_window_size().await.unwrap();
    let page = c
        .execute("return document.documentElement.scrollHeight", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(height);
    // The window's height includes its frame: add what the page cannot use.
    let inner = c
        .execute("return window.innerHeight", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(height);
    let tall = (page + height.saturating_sub(inner)).clamp(height, 4000);
    c.set_window_size(width as u32, tall as u32).await.unwrap();
    let png = c.screenshot().await.expect("screenshot");
    c.set_window_size(width as u32, height as u32)
        .await
        .unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// An organization with a readable name for the pictures, a key and "Main Office".
async fn acme(stack: &Stack, gw: &clokio_tests::Gateway) -> clokio_tests::Tenant {
    let org = stack
        .bus
        .call::<clokio_bus::ops::OrgCreateOp>(&clokio_bus::ops::OrgCreate {
            name: "Acme Corporation".to_owned(),
            plan: Plan::Pro,
            rate_limit_per_minute: None,
            timezone: clokio_bus::types::Timezone::parse("UTC").unwrap(),
        })
        .await
        .unwrap();
    let key = stack.create_key(org.id).await;
    gw.post(
        &key,
        "/api/v1/locations",
        &json!({
            "name": "Main Office", "latitude": 32.0853, "longitude": 34.7818, "radius_meters": 200
        }),
    )
    .await
    .expect(201);
    for (name, code, department) in [
        ("Liam Chen", "EMP-1001", "Engineering"),
        ("Maya Patel", "EMP-1002", "Sales"),
        ("Noah Müller", "EMP-1003", "Operations"),
    ] {
        gw.create_employee(
            &key,
            name,
            json!({"employee_code": code, "department": department, "hire_date": "2026-01-05"}),
        )
        .await;
    }
    gw.clock_in(&key, "EMP-1001").await.expect(200);
    gw.clock_in(&key, "EMP-1002").await.expect(200);
    gw.clock(&key, "break-start", "EMP-1002").await.expect(200);
    clokio_tests::Tenant { org, key }
}

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(10))
        .every(Duration::from_millis(50))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(err) => {
            let at = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let source = c.source().await.unwrap_or_default();
            let main = source.split("<main").nth(1).unwrap_or(&source);
            panic!(
                "no {css} within 10 s ({err}) on {at}:\n{}",
                &main[..main.len().min(3000)]
            );
        }
    }
}

/// Clicks what navigates (a link, a form's button) and waits until the next page has loaded, so
/// nothing is read from the page being left.
async fn click(c: &Client, css: &str) {
    c.execute("window.clokioLeaving = true", vec![])
        .await
        .unwrap();
    click_here(c, css).await;
    let started = Instant::now();
    loop {
        let arrived = c
            .execute(
                "return window.clokioLeaving === undefined && document.readyState === 'complete'",
                vec![],
            )
            .await;
        // While the page changes a script may not run at all: not there yet.
        if matches!(arrived, Ok(v) if v == json!(true)) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "clicking {css} led to no new page"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Clicks something that stays on the page (a download link).
async fn click_here(c: &Client, css: &str) {
    wait_for(c, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn fill(c: &Client, css: &str, text: &str) {
    let field = wait_for(c, css).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn heading(c: &Client) -> String {
    wait_for(c, "h1").await.text().await.unwrap()
}

async fn text_of(c: &Client, css: &str) -> String {
    wait_for(c, css).await.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_afternoon_in_a_real_browser() {
    tokio::time::timeout(Duration::from_secs(300), afternoon())
        .await
        .expect("the browser test finished within 5 minutes");
}

async fn afternoon() {
    let (mut stack, gw) = Stack::start().await;
    let console = stack.start_console().await;
    let t = acme(&stack, &gw).await;
    let email = format!("ada-{}@acme.test", uuid::Uuid::new_v4().simple());
    stack
        .create_admin(t.org.id, &email, "Ada Admin", Some(ADMIN_PASSWORD))
        .await;
    let chrome = Chrome::start().await;
    let c = chrome.c();
    let url = |path: &str| format!("{}{path}", console.url);

    // Sign in, with the keyboard: the skip link comes first, focus is visible, Enter submits.
    c.goto(&url("/employees")).await.unwrap();
    assert_eq!(heading(c).await, "Sign in to the admin console");
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .contains("/sign-in?next=/employees")
    );
    screenshot(c, "sign-in").await;
    fill(c, "#email", &email).await;
    let password = wait_for(c, "#password").await;
    password.send_keys(ADMIN_PASSWORD).await.unwrap();
    let outline = c
        .execute(
            "return getComputedStyle(document.activeElement).outlineStyle",
            vec![],
        )
        .await
        .unwrap();
    assert_ne!(outline, json!("none"), "the focused field shows its focus");
    password.send_keys("\u{E007}").await.unwrap(); // Enter
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_url(&url::Url::parse(&url("/employees")).unwrap())
        .await
        .expect("signed in, back on the page asked for");
    assert_eq!(heading(c).await, "Employees");

    // Admin > API Keys: create a read-only key, call the gateway with it, revoke it.
    click(c, "nav.mainnav a[href='/api-keys']").await;
    assert_eq!(heading(c).await, "API Keys");
    fill(c, "#name", "Payroll Integration").await;
    wait_for(c, "#preset")
        .await
        .select_by_value("read-only")
        .await
        .unwrap();
    click(c, "form[action='/api-keys'] button[type=submit]").await;
    let key = text_of(c, "#revealed-secret").await;
    assert!(key.starts_with("clk_") && key.len() == 36, "{key}");
    let copy = wait_for(c, "button.copy").await;
    assert!(
        copy.is_displayed().await.unwrap(),
        "the copy button shows where a clipboard exists"
    );
    assert!(
        text_of(c, ".reveal .warning")
            .await
            .contains("The API key is shown only once")
    );
    assert!(
        text_of(c, "tbody tr:first-child")
            .await
            .contains("Read-only"),
        "the list shows the key's access"
    );
    screenshot(c, "api-keys").await;
    gw.get(&key, "/api/v1/employees").await.expect(200);
    gw.clock_in(&key, "E-1")
        .await
        .expect_error(403, "This API key does not have the attendance:write scope");
    click(c, "a.button.danger[href$='/revoke']").await;
    assert_eq!(heading(c).await, "Revoke “Payroll Integration”?");
    screenshot(c, "api-key-revoke").await;
    click(c, "button.danger[type=submit]").await;
    wait_for(c, "p.flash").await;
    let revoked = Instant::now();
    loop {
        if gw.get(&key, "/api/v1/employees").await.status == 401 {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "the revoked key still works after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !c.source().await.unwrap().contains(&key),
        "the key is not shown again"
    );

    // Employees: a refusal beside its field, then the employee.
    click(c, "nav.mainnav a[href='/employees']").await;
    click(c, "a[href='/employees/new']").await;
    fill(c, "#name", "Sarah Johnson").await;
    fill(c, "#email", "sarah@").await;
    wait_for(c, "#location")
        .await
        .select_by_value("Main Office")
        .await
        .unwrap();
    fill(c, "#employee_code", "EMP-1042").await;
    fill(c, "#department", "Engineering").await;
    // The browser's own check of type=email would stop the form first: post it as typed.
    c.execute("document.getElementById('email').type = 'text'", vec![])
        .await
        .unwrap();
    click(c, "form[action='/employees'] button[type=submit]").await;
    assert_eq!(
        text_of(c, "#email-error").await,
        "The email field must be a valid email address"
    );
    assert_eq!(
        wait_for(c, "#name")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("Sarah Johnson")
    );
    screenshot(c, "employee-new").await;
    fill(c, "#email", "sarah.johnson@company.com").await;
    click(c, "form[action='/employees'] button[type=submit]").await;
    assert!(
        text_of(c, "p.flash")
            .await
            .contains("Sarah Johnson was added with employee code EMP-1042.")
    );
    screenshot(c, "employees").await;

    // Attendance > Today changes without a reload when she clocks in through the API.
    click(c, "nav.mainnav a[href='/attendance/today']").await;
    wait_for(c, "table[data-connected='true']").await;
    wait_for(c, "tr[data-code='EMP-1042'][data-status='not_in']").await;
    c.execute(
        "document.body.setAttribute('data-marker', 'still the same page')",
        vec![],
    )
    .await
    .unwrap();
    gw.clock_in(&t.key, "EMP-1042").await.expect(200);
    let clocked = Instant::now();
    wait_for(c, "tr[data-code='EMP-1042'][data-status='working']").await;
    eprintln!(
        "Today showed the clock-in {} ms after the API answered",
        clocked.elapsed().as_millis()
    );
    let marker = c
        .execute("return document.body.getAttribute('data-marker')", vec![])
        .await
        .unwrap();
    assert_eq!(marker, json!("still the same page"), "no reload");
    assert_eq!(text_of(c, "[data-tally='working']").await, "2");
    screenshot(c, "today").await;

    // Webhooks: subscribe a receiver, with the live preview of the template.
    let receiver = Receiver::start().await;
    click(c, "nav.mainnav a[href='/webhooks']").await;
    click(c, "a[href='/webhooks/new']").await;
    fill(c, "#url", &format!("{}/hook", receiver.url)).await;
    wait_for(c, "#platform")
        .await
        .select_by_value("slack")
        .await
        .unwrap();
    fill(
        c,
        "#template",
        "{employee_name} {event_type} at {location_name}",
    )
    .await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//output[@id='preview-text'][contains(., 'Test Employee clocked in at Test Location')]"))
        .await
        .expect("the live preview follows the template");
    screenshot(c, "webhook-form").await;
    click(c, "button[name=action][value=save]").await;
    assert!(text_of(c, "#revealed-secret").await.starts_with("whsec_"));
    screenshot(c, "webhook").await;
    click(c, "nav.mainnav a[href='/webhooks']").await;
    assert!(text_of(c, "table tbody tr").await.contains("/hook"));
    screenshot(c, "webhooks").await;
    gw.clock_out(&t.key, "EMP-1042").await.expect(200);
    receiver.wait_for(1, Duration::from_secs(10)).await;
    click(c, "a.button[href$='/deliveries']").await;
    assert_eq!(heading(c).await, "Delivery Log");
    // The log is a page: reload until the delivery is there.
    let started = Instant::now();
    loop {
        let source = c.source().await.unwrap();
        if source.contains("clock-out") && source.contains("succeeded") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no delivery in the log"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.refresh().await.unwrap();
    }
    screenshot(c, "delivery-log").await;
    click(c, "td.actions a[href*='/deliveries/']").await;
    let attempt = text_of(c, "table.attempts tbody tr").await;
    assert!(
        attempt.contains("200") && attempt.contains("ms"),
        "{attempt}"
    );
    screenshot(c, "delivery").await;
    click(c, "form[action$='/retry'] button").await;
    assert!(text_of(c, "p.flash").await.contains("Retry queued"));

    // Reports > Monthly Summary > Export CSV: the API's bytes.
    click(c, "nav.mainnav a[href='/reports/summary']").await;
    assert_eq!(heading(c).await, "Monthly Summary");
    screenshot(c, "summary").await;
    let href = wait_for(c, "a[download]")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    click_here(c, "a[download]").await;
    let file = loop {
        let done: Vec<_> = std::fs::read_dir(&chrome.downloads)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        if let Some(file) = done.first() {
            break file.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let query = href.split_once('?').unwrap().1;
    let res = gw
        .request(
            reqwest::Method::GET,
            Some(&t.key),
            &format!("/api/v1/attendance/summary?{query}&format=csv"),
        )
        .send()
        .await
        .unwrap();
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    let api = res.bytes().await.unwrap();
    assert!(
        disposition.contains(file.file_name().unwrap().to_str().unwrap()),
        "{disposition} vs {file:?}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        api.to_vec(),
        "the same bytes as the API's CSV"
    );

    // A wrong break, corrected from last month's day in Attendance, then the month closed.
    let today = chrono::Utc::now().date_naive();
    let first = (today.with_day(1).unwrap() - chrono::Duration::days(1))
        .with_day(1)
        .unwrap();
    let day = first + chrono::Duration::days(2);
    gw.post(
        &t.key,
        "/api/v1/attendance/import",
        &json!({"records": [{"nip": "EMP-1001", "clock_in": format!("{day}T09:00:00Z"),
            "clock_out": format!("{day}T17:30:00Z"),
            "breaks": [{"start": format!("{day}T12:00:00Z"), "end": format!("{day}T12:30:00Z")}]}]}),
    )
    .await
    .expect(201);
    c.goto(&url(&format!("/attendance/today?date={day}")))
        .await
        .unwrap();
    click_here(c, "tr[data-code='EMP-1001'] details.sessions summary").await;
    click(c, "tr[data-code='EMP-1001'] a.correct").await;
    assert_eq!(heading(c).await, "Session of Liam Chen EMP-1001");
    fill(c, "#breaks", "12:00-12:45").await;
    fill(c, "#reason", "Lunch ran long; signed paper slip").await;
    click(c, "form[action^='/attendance/sessions/'] button.primary").await;
    let flash = text_of(c, ".flash").await;
    assert!(flash.contains("was corrected"), "{flash}");
    assert!(
        text_of(c, "table.history").await.contains("Lunch ran long"),
        "the history shows the reason"
    );
    screenshot(c, "session").await;
    c.goto(&url(&format!(
        "/reports/summary?month={}&year={}",
        first.month(),
        first.year()
    )))
    .await
    .unwrap();
    click(c, "form[action='/reports/summary/close'] button").await;
    let closed = text_of(c, ".period.closed").await;
    assert!(closed.contains("Closed for payroll"), "{closed}");
    screenshot(c, "summary-closed").await;
    let periods = gw.get(&t.key, "/api/v1/periods").await.expect(200);
    assert_eq!(periods.data()[0]["closed_by"], "Ada Admin");

    // The other pages, for the record.
    click(c, "nav.mainnav a[href='/leave']").await;
    fill(c, "#nip", "EMP-1042").await;
    let today = chrono::Utc::now().date_naive().to_string();
    c.execute(
        "document.getElementById('start_date').value = arguments[0]; document.getElementById('end_date').value = arguments[0];",
        vec![json!(today)],
    )
    .await
    .unwrap();
    wait_for(c, "#type")
        .await
        .select_by_value("annual")
        .await
        .unwrap();
    click(
        c,
        "form[method='post'][action='/leave'] button[type=submit]",
    )
    .await;
    assert!(
        text_of(c, "p.flash")
            .await
            .contains("Annual leave for Sarah Johnson")
    );
    screenshot(c, "leave").await;
    click(c, "nav.mainnav a[href='/settings']").await;
    screenshot(c, "settings").await;
    c.goto(&url("/admin/users")).await.unwrap();
    screenshot(c, "users").await;
    c.goto(&url("/account/password")).await.unwrap();
    screenshot(c, "password").await;

    // A phone: nothing is wider than the screen.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&url("/attendance/today")).await.unwrap();
    wait_for(c, "table.board").await;
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true), "the page fits a 390-px screen");
    screenshot(c, "today-phone").await;
    c.set_window_size(1280, 900).await.unwrap();

    // Sign out, press Back: the sign-in page, no data.
    c.goto(&url("/employees")).await.unwrap();
    assert!(
        c.source()
            .await
            .unwrap()
            .contains("sarah.johnson@company.com")
    );
    click(c, "form[action='/sign-out'] button").await;
    assert_eq!(heading(c).await, "Sign in to the admin console");
    c.back().await.unwrap();
    let h1 = heading(c).await;
    let source = c.source().await.unwrap();
    assert_eq!(
        h1, "Sign in to the admin console",
        "Back shows no signed-in page"
    );
    assert!(
        !source.contains("sarah.johnson@company.com"),
        "no data after signing out"
    );
    screenshot(c, "signed-out-back").await;
    chrome.stop().await;
}

/// The API's docs page in the browser: it renders the served document (the title and an
/// operation of it), and every resource the page loaded came from the gateway's own origin. The
/// machine's network is closed, so a CDN's script would not load and the page would stay blank.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_docs_page_renders_from_our_origin_alone() {
    let (_stack, gw) = Stack::start().await;
    let chrome = Chrome::start().await;
    let c = chrome.c();
    c.goto(&format!("{}/docs", gw.url)).await.unwrap();
    let title = text_of(c, ".swagger-ui .info .title").await;
    assert!(title.starts_with("Clokio Public API"), "{title}");
    let operation = text_of(c, "#operations-Employees-list_employees").await;
    assert!(operation.contains("/api/v1/employees"), "{operation}");
    screenshot_in(c, "api", "docs").await;
    let loaded = c
        .execute(
            "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name))",
            vec![],
        )
        .await
        .unwrap();
    let loaded: Vec<String> = serde_json::from_value(loaded).unwrap();
    assert!(
        loaded.iter().any(|u| u.ends_with("/swagger-ui-bundle.js"))
            && loaded.iter().any(|u| u.ends_with("/api/v1/openapi.json")),
        "{loaded:?}"
    );
    for url in &loaded {
        assert!(
            url.starts_with(&format!("{}/", gw.url)),
            "the docs page loaded {url}, not from {}",
            gw.url
        );
    }
    chrome.stop().await;
}

//! The admin console over HTTP, as a browser without JavaScript uses it: sign-in and sessions,
//! CSRF and origin checks, throttling, isolation between organizations, every form's validation
//! messages, and what each page shows against what the public API and the database say.

use std::time::{Duration, Instant};

use clokio_bus::types::Plan;
use clokio_tests::{
    ADMIN_PASSWORD, Browser, Console, Gateway, Receiver, Stack, Tenant, html_escape, json,
};

/// A full stack, a console, an org and its admin (also for `console_pages`).
pub(crate) struct Setup {
    pub stack: Stack,
    pub gw: Gateway,
    pub console: Console,
    pub t: Tenant,
    pub email: String,
}

pub(crate) fn email() -> String {
    format!("admin-{}@acme.test", uuid::Uuid::new_v4().simple())
}

/// A full stack, a console, an org with a key and "Main Office", and an admin with a password.
pub(crate) async fn setup() -> Setup {
    let (mut stack, gw) = Stack::start().await;
    let console = stack.start_console().await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let email = email();
    stack
        .create_admin(t.org.id, &email, "Ada Admin", Some(ADMIN_PASSWORD))
        .await;
    Setup {
        stack,
        gw,
        console,
        t,
        email,
    }
}

impl Setup {
    pub async fn browser(&self) -> Browser {
        Browser::signed_in(&self.console, &self.email, ADMIN_PASSWORD).await
    }
}

/// Every page a signed-in admin reads.
const PAGES: &[&str] = &[
    "/attendance/today",
    "/employees",
    "/employees/new",
    "/api-keys",
    "/admin/users",
    "/reports/summary",
    "/webhooks",
    "/webhooks/new",
    "/leave",
    "/settings",
    "/account/password",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_out_pages_go_to_sign_in_and_back_after_it() {
    let s = setup().await;
    let mut b = s.console.browser();
    for page in PAGES {
        let res = b.get(page).await;
        res.expect_redirect("/sign-in?next=");
        assert_eq!(res.header("cache-control"), Some("no-store"), "{page}");
    }
    b.get("/").await.expect_redirect("/sign-in");
    // Forms and the live stream without a session.
    b.post_raw("/api-keys", &[("name", "x")], Some(&s.console.url.clone()))
        .await
        .expect_redirect("/sign-in");
    let live = s.console.browser().console.url.clone();
    let res = reqwest::Client::new()
        .get(format!("{live}/attendance/live"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Signing in comes back to the page asked for.
    let res = b.get("/employees?status=active").await;
    let next = res.location().unwrap().to_owned();
    assert_eq!(next, "/sign-in?next=/employees%3Fstatus%3Dactive");
    b.get(&next).await.expect(200);
    let res = b
        .post(
            "/sign-in",
            &[
                ("email", &s.email),
                ("password", ADMIN_PASSWORD),
                ("next", "/employees?status=active"),
            ],
        )
        .await;
    res.expect_redirect("/employees?status=active");
    // A next that leaves the site is ignored, however it is disguised (browsers drop tabs and
    // line breaks from a URL, so `/\t/evil.test` would be `//evil.test`).
    for next in [
        "//evil.test/",
        "https://evil.test/",
        "/\t/evil.test",
        "/\\evil.test",
        "/\n/evil.test",
    ] {
        let mut b = s.console.browser();
        b.get("/sign-in").await;
        b.post(
            "/sign-in",
            &[
                ("email", &s.email),
                ("password", ADMIN_PASSWORD),
                ("next", next),
            ],
        )
        .await
        .expect_redirect_to("/");
        // Already signed in, the sign-in page sends one on at once: to the same safe place.
        let query = format!(
            "/sign-in?next={}",
            next.replace('\t', "%09")
                .replace('\n', "%0A")
                .replace('\\', "%5C")
        );
        b.get(&query).await.expect_redirect_to("/");
    }
    let mut b = s.console.browser();
    b.get("/sign-in").await;
    b.post(
        "/sign-in",
        &[("email", &s.email), ("password", ADMIN_PASSWORD)],
    )
    .await
    .expect_redirect_to("/");
    assert_eq!(b.get("/").await.location(), Some("/attendance/today"));
    for page in PAGES {
        let res = b.get(page).await;
        res.expect(200);
        assert_eq!(res.header("cache-control"), Some("no-store"), "{page}");
        assert!(res.text.contains("Sign out"), "{page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_strict_cookies_in_redis_and_sign_out_ends_them() {
    let s = setup().await;
    let mut b = s.console.browser();
    let form = b.get("/sign-in").await;
    let signin_cookie = form.header("set-cookie").unwrap().to_owned();
    assert!(signin_cookie.starts_with("clokio_signin="));
    assert!(signin_cookie.contains("HttpOnly") && signin_cookie.contains("SameSite=Strict"));
    let res = b
        .post(
            "/sign-in",
            &[("email", &s.email), ("password", ADMIN_PASSWORD)],
        )
        .await;
    res.expect_redirect("/");
    let cookie = res.set_cookie("clokio_session").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http here: {cookie}");
    let id = b.cookies["clokio_session"].clone();
    // 256 random bits, base64url.
    assert_eq!(id.len(), 43);

    // Stored in Redis under a hash of the id, never the id, with the idle lifetime.
    let redis = redis::Client::open(s.stack.redis_url.as_str()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let prefix = s.stack.bus_config.subjects.prefix().to_string();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:console:session:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert!(!keys[0].contains(&id));
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 11 * 3600 * 1000 && ttl <= 12 * 3600 * 1000, "{ttl}");
    let org: String = redis::cmd("HGET")
        .arg(&keys[0])
        .arg("org_id")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(org, s.t.org.id.to_string());

    // Sign out: the session is gone from Redis, the cookie is deleted, the old id is useless.
    b.get("/employees").await.expect(200);
    let res = b.post("/sign-out", &[]).await;
    res.expect_redirect("/sign-in?signed_out=1");
    assert!(res.header("set-cookie").unwrap().contains("Max-Age=0"));
    let left: i64 = redis::cmd("EXISTS")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
    b.get("/sign-in?signed_out=1")
        .await
        .expect_text("You have signed out.");
    let mut replay = s.console.browser();
    replay.cookies.insert("clokio_session".into(), id);
    replay.get("/employees").await.expect_redirect("/sign-in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_absolute_lifetimes_end_sessions() {
    let s = setup().await;
    let mut b = s.browser().await;
    b.get("/employees").await.expect(200);
    let redis = redis::Client::open(s.stack.redis_url.as_str()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let prefix = s.stack.bus_config.subjects.prefix().to_string();
    let keys_conn = conn.clone();
    let key = || {
        let mut conn = keys_conn.clone();
        let pattern = format!("{prefix}:console:session:*");
        async move {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.into_iter().next()
        }
    };

    // Signed in more than 7 days ago: over, however recently used.
    let k = key().await.unwrap();
    let eight_days_ago = chrono::Utc::now().timestamp_millis() - 8 * 24 * 3600 * 1000;
    let _: () = redis::cmd("HSET")
        .arg(&k)
        .arg("created_ms")
        .arg(eight_days_ago)
        .query_async(&mut conn)
        .await
        .unwrap();
    b.get("/employees").await.expect_redirect("/sign-in");
    assert!(key().await.is_none(), "the expired session is deleted");

    // Near the end of its 7 days, a session is kept only for what is left of them.
    let mut b = s.browser().await;
    let k = key().await.unwrap();
    let almost = chrono::Utc::now().timestamp_millis() - (7 * 24 * 3600 - 60) * 1000;
    let _: () = redis::cmd("HSET")
        .arg(&k)
        .arg("created_ms")
        .arg(almost)
        .query_async(&mut conn)
        .await
        .unwrap();
    b.get("/employees").await.expect(200);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&k)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");

    // Idle: Redis lets the key expire; the next request finds no session.
    let _: () = redis::cmd("PEXPIRE")
        .arg(&k)
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    b.get("/employees").await.expect_redirect("/sign-in");

    // A console with a short idle time really ends sessions after it.
    let mut stack = s.stack;
    let mut config = stack.console_config();
    config.session_idle = Duration::from_secs(2);
    let short = stack.start_console_with(config).await;
    let mut b = Browser::signed_in(&short, &s.email, ADMIN_PASSWORD).await;
    b.get("/employees").await.expect(200);
    // Time passing unused is what is tested here.
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.get("/employees").await.expect_redirect("/sign-in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_need_the_sessions_token_and_the_consoles_origin() {
    let s = setup().await;
    let mut b = s.browser().await;
    b.get("/api-keys").await.expect(200);
    let token = b.csrf.clone().unwrap();
    let url = s.console.url.clone();
    let count = || async {
        s.gw.get(&s.t.key, "/api/v1/api-keys")
            .await
            .data()
            .as_array()
            .unwrap()
            .len()
    };
    let before = count().await;
    for (fields, origin, why) in [
        (vec![("name", "No token")], Some(url.as_str()), "no token"),
        (
            vec![("_csrf", "forged"), ("name", "Forged")],
            Some(url.as_str()),
            "wrong token",
        ),
        (
            vec![("_csrf", token.as_str()), ("name", "Elsewhere")],
            Some("http://evil.test"),
            "other origin",
        ),
        (
            vec![("_csrf", token.as_str()), ("name", "Nowhere")],
            None,
            "no origin",
        ),
        (
            vec![("_csrf", token.as_str()), ("name", "Null")],
            Some("null"),
            "null origin",
        ),
    ] {
        let res = b.post_raw("/api-keys", &fields, origin).await;
        assert_eq!(res.status, 403, "{why}");
        res.expect_text("Request refused");
        assert!(res.header("content-type").unwrap().starts_with("text/html"));
    }
    // Another session's token is not this session's.
    let mut other = s.browser().await;
    other.get("/api-keys").await;
    let theirs = other.csrf.clone().unwrap();
    assert_ne!(theirs, token);
    let res = b
        .post_raw(
            "/api-keys",
            &[("_csrf", &theirs), ("name", "Theirs")],
            Some(&url),
        )
        .await;
    assert_eq!(res.status, 403);
    assert_eq!(count().await, before, "nothing was created");
    // With both, it works; a script may send the token as a header instead.
    b.post("/api-keys", &[("name", "Real")])
        .await
        .expect_redirect("/api-keys");
    assert_eq!(count().await, before + 1);
    let res = reqwest::Client::new()
        .post(format!("{url}/webhooks/preview"))
        .header(
            "cookie",
            format!("clokio_session={}", b.cookies["clokio_session"]),
        )
        .header("origin", &url)
        .header("x-csrf-token", &token)
        .form(&[
            ("platform", "slack"),
            ("template", "{employee_name} {event_type}"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let preview: serde_json::Value = res.json().await.unwrap();
    assert_eq!(preview["text"], "Test Employee clocked in");

    // The sign-in form has a token of its own, bound to a cookie.
    let mut fresh = s.console.browser();
    fresh.get("/sign-in").await;
    fresh.cookies.clear();
    let res = fresh
        .post(
            "/sign-in",
            &[("email", &s.email), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(res.status, 403);
    let mut fresh = s.console.browser();
    fresh.get("/sign-in").await;
    let token = fresh.csrf.clone().unwrap();
    let res = fresh
        .post_raw(
            "/sign-in",
            &[
                ("_csrf", &token),
                ("email", &s.email),
                ("password", ADMIN_PASSWORD),
            ],
            Some("http://evil.test"),
        )
        .await;
    assert_eq!(res.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_carries_a_strict_policy() {
    let s = setup().await;
    let mut b = s.browser().await;
    let mut anonymous = s.console.browser();
    let pages = [
        b.get("/employees").await,
        b.get("/webhooks/new").await,
        anonymous.get("/sign-in").await,
        anonymous.get("/no/such/page").await,
    ];
    for page in &pages {
        let csp = page.header("content-security-policy").expect("a CSP");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert!(!csp.contains("http"), "no other origin: {csp}");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(directive), "{directive} in {csp}");
        }
        assert_eq!(page.header("referrer-policy"), Some("same-origin"));
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        // No inline script or style anywhere.
        assert!(
            !page.text.contains("<script>") && !page.text.contains("style="),
            "{}",
            page.text
        );
        assert!(!page.text.contains("onclick="));
    }
    pages[3].expect(404).expect_text("Page not found");
    // What the HTTP layer refuses is a page too, never a bare text or JSON body.
    let url = s.console.url.clone();
    let wrong_method = reqwest::get(format!("{url}/sign-in/choose")).await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert!(
        wrong_method.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        wrong_method
            .text()
            .await
            .unwrap()
            .contains("Request refused")
    );
    let not_a_form = reqwest::Client::new()
        .post(format!("{url}/sign-in"))
        .header("origin", &url)
        .json(&json!({"email": s.email}))
        .send()
        .await
        .unwrap();
    assert!(not_a_form.status().is_client_error());
    assert!(
        not_a_form.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // The assets are ours, hashed and cacheable; an unknown one is 404.
    let css = pages[0]
        .text
        .split("href=\"")
        .find_map(|s| s.split('"').next().filter(|h| h.ends_with(".css")))
        .unwrap()
        .to_owned();
    let res = reqwest::get(format!("{}{css}", s.console.url))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let res = reqwest::get(format!("{}/assets/console.000000000000.css", s.console.url))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_say_the_same_and_are_throttled_per_account() {
    let s = setup().await;
    let mut b = s.console.browser();
    b.get("/sign-in").await;
    // A success clears the account's count: four failures and a success leave it at none.
    for _ in 0..4 {
        b.post(
            "/sign-in",
            &[("email", &s.email), ("password", "wrong password")],
        )
        .await
        .expect(422);
    }
    b.post(
        "/sign-in",
        &[("email", &s.email), ("password", ADMIN_PASSWORD)],
    )
    .await
    .expect_redirect("/");
    let mut b = s.console.browser();
    b.get("/sign-in").await;
    let wrong = b
        .post(
            "/sign-in",
            &[("email", &s.email), ("password", "not the password")],
        )
        .await;
    wrong
        .expect(422)
        .expect_text("These credentials do not match our records");
    // The email stays typed, the password does not.
    assert!(
        wrong
            .text
            .contains(&format!("value=\"{}\"", html_escape(&s.email)))
    );
    assert!(!wrong.text.contains("not the password"));
    let unknown = b
        .post(
            "/sign-in",
            &[
                ("email", "nobody@acme.test"),
                ("password", "whatever it is"),
            ],
        )
        .await;
    unknown
        .expect(422)
        .expect_text("These credentials do not match our records");
    b.post("/sign-in", &[("email", "not an email"), ("password", "x")])
        .await
        .expect(422)
        .expect_text("The email field must be a valid email address");
    b.post("/sign-in", &[("email", &s.email), ("password", "")])
        .await
        .expect(422)
        .expect_text("The password field is required");

    // Five failures for the account in the window: the fifth already says how long to wait...
    for _ in 0..3 {
        b.post(
            "/sign-in",
            &[("email", &s.email), ("password", "still wrong")],
        )
        .await
        .expect(422);
    }
    let fifth = b
        .post(
            "/sign-in",
            &[("email", &s.email), ("password", "still wrong")],
        )
        .await;
    fifth.expect(429).expect_text("Too many failed sign-ins");
    assert!(
        fifth.text.contains("Try again in 15 minutes"),
        "{}",
        fifth.text
    );
    // ... and then even the right password is refused, from any address.
    let mut elsewhere = s.console.browser();
    elsewhere.get("/sign-in").await;
    let refused = elsewhere
        .post(
            "/sign-in",
            &[
                ("email", &s.email.to_uppercase()),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    refused.expect(429);
    assert!(!elsewhere.cookies.contains_key("clokio_session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_throttled_per_address() {
    let (mut stack, gw) = Stack::start().await;
    let mut config = stack.console_config();
    config.signin_address_limit = 4;
    let console = stack.start_console_with(config).await;
    let t = stack.tenant(&gw, Plan::Pro).await;
    let email = email();
    stack
        .create_admin(t.org.id, &email, "Ada", Some(ADMIN_PASSWORD))
        .await;

    // Different accounts from one address: the fourth failure in all reaches the address limit.
    let mut b = console.browser();
    b.get("/sign-in").await;
    for i in 0..3 {
        b.post(
            "/sign-in",
            &[("email", &format!("guess{i}@acme.test")), ("password", "x")],
        )
        .await
        .expect(422);
    }
    b.post(
        "/sign-in",
        &[("email", "guess9@acme.test"), ("password", "x")],
    )
    .await
    .expect(429)
    .expect_text("Too many failed sign-ins");
    b.post(
        "/sign-in",
        &[("email", &email), ("password", ADMIN_PASSWORD)],
    )
    .await
    .expect(429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_admins_sessions_end_and_a_password_change_ends_the_others() {
    let s = setup().await;
    let bob = email();
    let created = s
        .stack
        .create_admin(s.t.org.id, &bob, "Bob Admin", Some(ADMIN_PASSWORD))
        .await;
    let mut ada = s.browser().await;
    let mut bob_phone = Browser::signed_in(&s.console, &bob, ADMIN_PASSWORD).await;
    let mut bob_laptop = Browser::signed_in(&s.console, &bob, ADMIN_PASSWORD).await;
    bob_phone.get("/employees").await.expect(200);

    // Bob changes his password on his laptop: the laptop stays signed in, the phone is out.
    bob_laptop.get("/account/password").await.expect(200);
    bob_laptop
        .post(
            "/account/password",
            &[
                ("current_password", "wrong one"),
                ("new_password", "a new password!"),
                ("confirm_password", "a new password!"),
            ],
        )
        .await
        .expect(422)
        .expect_text("The current_password field does not match your password");
    bob_laptop
        .post(
            "/account/password",
            &[
                ("current_password", ADMIN_PASSWORD),
                ("new_password", "too short"),
                ("confirm_password", "too short"),
            ],
        )
        .await
        .expect(422)
        .expect_text("The new_password field must be at least 12 characters");
    bob_laptop
        .post(
            "/account/password",
            &[
                ("current_password", ADMIN_PASSWORD),
                ("new_password", "a new password!"),
                ("confirm_password", "another one!!"),
            ],
        )
        .await
        .expect(422)
        .expect_text("The confirm_password field must match the new password");
    bob_laptop
        .post(
            "/account/password",
            &[
                ("current_password", ADMIN_PASSWORD),
                ("new_password", "a new password!"),
                ("confirm_password", "a new password!"),
            ],
        )
        .await
        .expect_redirect_to("/attendance/today");
    bob_laptop
        .get("/attendance/today")
        .await
        .expect(200)
        .expect_text("Your password has been changed");
    bob_phone
        .get("/employees")
        .await
        .expect_redirect("/sign-in");
    let mut b = s.console.browser();
    b.sign_in(&bob, ADMIN_PASSWORD).await.expect(422);
    Browser::signed_in(&s.console, &bob, "a new password!").await;

    // Ada removes Bob: his sessions end at once.
    let id = created.admin.employee_id.to_string();
    let confirm = ada.get(&format!("/admin/users/{id}/remove")).await;
    confirm
        .expect(200)
        .expect_text("Remove Bob Admin as an admin?");
    let mut stack = s.stack;
    let replica = stack.start_console().await;
    let mut bob_elsewhere = Browser::signed_in(&replica, &bob, "a new password!").await;
    ada.post(&format!("/admin/users/{id}/remove"), &[])
        .await
        .expect_redirect("/admin/users");
    bob_laptop
        .get("/employees")
        .await
        .expect_redirect("/sign-in");
    // Another console replica trusts what it knew of Bob for at most `admin_check` (1 s).
    let removed = Instant::now();
    loop {
        let res = bob_elsewhere.get("/employees").await;
        if res.status == 303 {
            break;
        }
        assert!(
            removed.elapsed() < Duration::from_secs(10),
            "Bob's other session still works"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the other replica ended Bob's session {} ms after the removal",
        removed.elapsed().as_millis()
    );
    let users = ada.get("/admin/users").await;
    users.expect_text("Bob Admin is no longer an admin.");
    assert!(!users.text.contains(&bob));
    // Bob is still an employee, and can no longer sign in.
    let employees = s.gw.get(&s.t.key, "/api/v1/employees").await;
    assert!(employees.text.contains(&bob));
    let mut b = s.console.browser();
    b.sign_in(&bob, "a new password!").await.expect(422);

    // The last admin cannot be removed.
    let me = s.gw.get(&s.t.key, "/api/v1/employees").await;
    let ada_id = me
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["email"] == s.email.as_str())
        .unwrap()["employee_id"]
        .to_string();
    let res = ada
        .post(&format!("/admin/users/{ada_id}/remove"), &[])
        .await;
    res.expect(409)
        .expect_text("The organization's last admin cannot be removed");
    // Nor deactivated, through the console or the API: the organization keeps a way in.
    let ada_code = me
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["email"] == s.email.as_str())
        .unwrap()["employee_code"]
        .as_str()
        .unwrap()
        .to_owned();
    ada.post(
        &format!("/employees/{ada_code}/status"),
        &[("status", "inactive")],
    )
    .await
    .expect(409)
    .expect_text("The organization's last active admin cannot be deactivated");
    s.gw.patch(
        &s.t.key,
        &format!("/api/v1/employees/{ada_code}/status"),
        &json!({"status": "inactive"}),
    )
    .await
    .expect_error(
        409,
        "The organization's last active admin cannot be deactivated",
    );
    ada.get("/employees").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_password_must_be_changed_first() {
    let s = setup().await;
    let mut ada = s.browser().await;
    let carol = email();
    ada.get("/admin/users").await;
    ada.post("/admin/users", &[("name", ""), ("email", &carol)])
        .await
        .expect(422)
        .expect_text("The name field is required");
    ada.post("/admin/users", &[("name", "Carol"), ("email", "nope")])
        .await
        .expect(422)
        .expect_text("The email field must be a valid email address");
    ada.post("/admin/users", &[("name", "Carol"), ("email", &s.email)])
        .await
        .expect(422)
        .expect_text("The email belongs to an admin of the organization already");
    ada.post("/admin/users", &[("name", "Carol"), ("email", &carol)])
        .await
        .expect_redirect("/admin/users");
    let page = ada.get("/admin/users").await;
    page.expect(200);
    page.expect_text("Carol <");
    page.expect_text("One-time password for Carol");
    let start =
        page.text.find("id=\"revealed-secret\">").unwrap() + "id=\"revealed-secret\">".len();
    let password = page.text[start..start + 16].to_owned();
    assert!(
        password.chars().all(|c| c.is_ascii_alphanumeric()),
        "{password}"
    );
    // Shown once.
    assert!(!ada.get("/admin/users").await.text.contains(&password));

    let mut c = s.console.browser();
    c.sign_in(&carol, &password)
        .await
        .expect_redirect("/account/password");
    c.get("/employees")
        .await
        .expect_redirect("/account/password");
    c.get("/account/password")
        .await
        .expect(200)
        .expect_text("You signed in with a one-time password");
    c.post(
        "/account/password",
        &[
            ("current_password", &password),
            ("new_password", "carols own password"),
            ("confirm_password", "carols own password"),
        ],
    )
    .await
    .expect_redirect("/");
    c.get("/employees").await.expect(200);

    // An existing employee is promoted rather than duplicated.
    let dan =
        s.gw.create_employee(&s.t.key, "Dan Employee", json!({}))
            .await;
    let dan_email = dan["email"].as_str().unwrap();
    ada.post("/admin/users", &[("name", "Dan"), ("email", dan_email)])
        .await
        .expect_redirect("/admin/users");
    ada.get("/admin/users")
        .await
        .expect_text("Dan Employee <")
        .expect_text("is now an admin.");
    let all = s.gw.get(&s.t.key, "/api/v1/employees").await;
    let dans: Vec<_> = all
        .data()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["email"] == dan_email)
        .collect();
    assert_eq!(dans.len(), 1);
    assert_eq!(dans[0]["role"], "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_made_in_the_console_work_on_the_gateway_until_revoked() {
    let s = setup().await;
    let mut b = s.browser().await;
    b.get("/api-keys")
        .await
        .expect(200)
        .expect_text("Create New Key");
    b.post("/api-keys", &[("name", "  ")])
        .await
        .expect(422)
        .expect_text("The name field is required");
    let long = "x".repeat(101);
    let res = b.post("/api-keys", &[("name", &long)]).await;
    res.expect(422)
        .expect_text("The name field must not be greater than 100 characters");
    assert!(res.text.contains(&long), "the typed value is kept");

    b.post("/api-keys", &[("name", "Payroll Integration")])
        .await
        .expect_redirect("/api-keys");
    // The key waits for the next page under a key of its own that expires in 5 minutes.
    let redis = redis::Client::open(s.stack.redis_url.as_str()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let prefix = s.stack.bus_config.subjects.prefix().to_string();
    let waiting: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:console:session:*:reveal"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&waiting[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 300_000, "{ttl}");
    let page = b.get("/api-keys").await;
    let left: i64 = redis::cmd("EXISTS")
        .arg(&waiting[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "taken out as it is shown");
    page.expect_text("API key “Payroll Integration” created.")
        .expect_text("The API key is shown only once at creation time.");
    let start =
        page.text.find("id=\"revealed-secret\">").unwrap() + "id=\"revealed-secret\">".len();
    let key = page.text[start..start + 36].to_owned();
    assert!(key.starts_with("clk_"), "{key}");
    s.gw.get(&key, "/api/v1/employees").await.expect(200);
    // Shown once: the next view has only the hint.
    let again = b.get("/api-keys").await;
    assert!(!again.text.contains(&key));
    again.expect_text(&format!("clk_…{}", &key[32..]));

    let list = s.gw.get(&s.t.key, "/api/v1/api-keys").await;
    let id = list
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "Payroll Integration")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The list shows when the key was last used: the gateway writes it in batches.
    let used = Instant::now();
    loop {
        let page = b.get("/api-keys").await;
        let row = page
            .text
            .split(&format!(r#"<tr data-key="{id}">"#))
            .nth(1)
            .unwrap();
        let row = row.split("</tr>").next().unwrap();
        let cell = row
            .split(r#"<td class="last-used">"#)
            .nth(1)
            .and_then(|c| c.split("</td>").next())
            .unwrap_or_else(|| panic!("no last-used cell: {row}"));
        if !cell.contains("Never") {
            assert!(cell.ends_with(" UTC"), "{row}");
            break;
        }
        assert!(
            used.elapsed() < Duration::from_secs(10),
            "last used never shown: {row}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.get(&format!("/api-keys/{id}/revoke"))
        .await
        .expect(200)
        .expect_text("Revoke “Payroll Integration”?");
    b.post(&format!("/api-keys/{id}/revoke"), &[])
        .await
        .expect_redirect("/api-keys");
    let revoked = Instant::now();
    loop {
        if s.gw.get(&key, "/api/v1/employees").await.status == 401 {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "the key still works after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.get("/api-keys")
        .await
        .expect_text("revoked. It stops working within a second.");
    // Revoking twice says why; a made-up id is not found.
    b.post(&format!("/api-keys/{id}/revoke"), &[])
        .await
        .expect(409)
        .expect_text("API key is already revoked");
    b.post("/api-keys/not-a-uuid/revoke", &[]).await.expect(404);
    b.get(&format!("/api-keys/{}/revoke", uuid::Uuid::new_v4()))
        .await
        .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_ids_give_the_not_found_page() {
    let s = setup().await;
    let other = s.stack.tenant(&s.gw, Plan::Pro).await;
    let gw = &s.gw;
    // Org B's things, made through the API.
    let key_id = gw.get(&other.key, "/api/v1/api-keys").await.data()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let receiver = Receiver::start().await;
    let hook = gw
        .post(
            &other.key,
            "/api/v1/webhooks",
            &json!({"url": format!("{}/hook", receiver.url), "events": ["clock-in"]}),
        )
        .await
        .expect(201);
    let hook_id = hook.data()["id"].as_str().unwrap().to_owned();
    let delivery = gw
        .post(
            &other.key,
            &format!("/api/v1/webhooks/{hook_id}/test"),
            &json!({}),
        )
        .await
        .expect(202);
    let delivery_id = delivery.data()["id"].as_str().unwrap().to_owned();
    let emp = gw
        .create_employee(&other.key, "Bea", json!({"employee_code": "B-1"}))
        .await;
    let leave = gw
        .post(&other.key, "/api/v1/leaves", &json!({"nip": "B-1", "start_date": "2026-03-02", "end_date": "2026-03-03", "type": "sick"}))
        .await
        .expect(201);
    let leave_id = leave.data()["id"].to_string();
    let session_id = gw
        .post(
            &other.key,
            "/api/v1/attendance/import",
            &json!({"records": [{"nip": "B-1", "clock_in": "2026-03-04T08:00:00Z",
                "clock_out": "2026-03-04T16:00:00Z"}]}),
        )
        .await
        .expect(201)
        .data()["attendance_ids"][0]
        .to_string();
    let admin_b = s
        .stack
        .create_admin(other.org.id, &email(), "Boss B", Some(ADMIN_PASSWORD))
        .await;
    let admin_b = admin_b.admin.employee_id.to_string();

    let mut a = s.browser().await;
    for path in [
        format!("/api-keys/{key_id}/revoke"),
        format!("/webhooks/{hook_id}"),
        format!("/webhooks/{hook_id}/delete"),
        format!("/webhooks/{hook_id}/deliveries"),
        format!("/webhooks/{hook_id}/deliveries/{delivery_id}"),
        format!("/admin/users/{admin_b}/remove"),
        format!("/leave/{leave_id}/delete?month=3&year=2026"),
        format!("/attendance/sessions/{session_id}"),
    ] {
        a.get(&path).await.expect(404).expect_text("Page not found");
    }
    for path in [
        format!("/api-keys/{key_id}/revoke"),
        format!("/webhooks/{hook_id}"),
        format!("/webhooks/{hook_id}/test"),
        format!("/webhooks/{hook_id}/rotate-secret"),
        format!("/webhooks/{hook_id}/active"),
        format!("/webhooks/{hook_id}/delete"),
        format!("/webhooks/{hook_id}/deliveries/{delivery_id}/retry"),
        format!("/admin/users/{admin_b}/remove"),
        format!("/leave/{leave_id}/delete"),
        "/employees/B-1/status".to_owned(),
        format!("/attendance/sessions/{session_id}"),
        format!("/attendance/sessions/{session_id}/delete"),
    ] {
        let form = [
            ("active", "false"),
            ("status", "inactive"),
            ("reason", "Mallory"),
            ("clock_in", "2026-03-04T07:00"),
        ];
        a.post(&path, &form)
            .await
            .expect(404)
            .expect_text("Page not found");
    }
    // Nothing of B changed.
    gw.get(&other.key, "/api/v1/employees").await.expect(200);
    let b_hook = gw
        .get(&other.key, &format!("/api/v1/webhooks/{hook_id}"))
        .await
        .expect(200);
    assert_eq!(b_hook.data()["active"], true);
    assert_eq!(b_hook.data()["secret_hint"], hook.data()["secret_hint"]);
    let b_emp = gw.get(&other.key, "/api/v1/employees").await;
    assert_eq!(b_emp.data()[0]["status"], "active");
    assert_eq!(b_emp.data()[0]["employee_code"], emp["employee_code"]);
    let leaves = gw.get(&other.key, "/api/v1/leaves?month=3&year=2026").await;
    assert_eq!(leaves.data().as_array().unwrap().len(), 1);
    let session = gw
        .get(
            &other.key,
            &format!("/api/v1/attendance/sessions/{session_id}"),
        )
        .await
        .expect(200);
    assert_eq!(session.data()["clock_in"], "2026-03-04T08:00:00Z");
    assert_eq!(session.data()["revision"], 1);
    gw.get(&other.key, "/api/v1/api-keys").await.expect(200);
    assert!(
        gw.get(&other.key, "/api/v1/employees").await.status == 200,
        "B's key still works"
    );
    // And A's pages show none of B.
    for page in [
        "/employees",
        "/webhooks",
        "/api-keys",
        "/admin/users",
        "/leave?month=3&year=2026",
    ] {
        let res = a.get(page).await.expect(200).text.clone();
        assert!(
            !res.contains("Bea") && !res.contains(&hook_id) && !res.contains("Boss B"),
            "{page}"
        );
    }
}
/// The console offers the presets and a last day; the list shows each key's access and expiry,
/// and a kiosk key made there can clock but not read.
#[tokio::test]
async fn console_keys_take_a_preset_and_a_last_day() {
    let s = setup().await;
    let mut b = s.browser().await;
    let page = b.get("/api-keys").await;
    page.expect(200);
    for label in ["Full access", "Kiosk: clock in and out only", "Read-only"] {
        page.expect_text(label);
    }
    b.post("/api-keys", &[("name", "Lobby"), ("preset", "root")])
        .await
        .expect(422)
        .expect_field_error("preset", "Choose full access, kiosk or read-only");
    b.post(
        "/api-keys",
        &[
            ("name", "Lobby"),
            ("preset", "kiosk"),
            ("last_day", "2020-01-31"),
        ],
    )
    .await
    .expect(422)
    .expect_field_error("last_day", "The last day must be today or later");
    let listed = || async {
        let res = s.gw.get(&s.t.key, "/api/v1/api-keys").await;
        assert_eq!(res.status, 200);
        res
    };
    assert_eq!(
        listed().await.data().as_array().unwrap().len(),
        1,
        "nothing was made"
    );

    let last_day = (chrono::Utc::now() + chrono::Duration::days(30)).date_naive();
    b.post(
        "/api-keys",
        &[
            ("name", "Lobby"),
            ("preset", "kiosk"),
            ("last_day", &last_day.to_string()),
        ],
    )
    .await
    .expect_redirect("/api-keys");
    let page = b.get("/api-keys").await;
    page.expect(200);
    let start =
        page.text.find("id=\"revealed-secret\">").unwrap() + "id=\"revealed-secret\">".len();
    let key = page.text[start..start + 36].to_owned();
    let next_day = last_day.succ_opt().unwrap();
    // The tenant's time zone is UTC: the key works through its last day.
    page.expect_text("Kiosk: clock in and out only")
        .expect_text(&format!("{next_day} 00:00:00 UTC"));
    let made = listed().await;
    let lobby = made
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "Lobby")
        .unwrap()
        .clone();
    assert_eq!(lobby["scopes"], json!(["attendance:write"]));
    assert_eq!(lobby["expires_at"], format!("{next_day}T00:00:00Z"));
    s.gw.create_employee(&s.t.key, "Ann", json!({"employee_code": "E-9"}))
        .await;
    s.gw.clock_in(&key, "E-9").await.expect(200);
    s.gw.get(&key, "/api/v1/employees")
        .await
        .expect_error(403, "This API key does not have the employees:read scope");
}

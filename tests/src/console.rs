//! The admin console in tests: a replica started by the stack, an admin made over the bus as
//! clokioctl makes one, and a client that behaves like a browser without JavaScript (cookies
//! kept, redirects not followed, forms posted with the page's CSRF token and the console's
//! `Origin`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use clokio_bus::ids::OrgId;
use clokio_bus::ops::{AdminCreate, AdminCreateOp, CreatedAdmin};
use clokio_bus::types::Email;
use reqwest::header::HeaderMap;

use crate::Stack;

/// A password that satisfies the admin rules.
pub const ADMIN_PASSWORD: &str = "correct horse battery";

impl Stack {
    /// A console replica's test configuration (no ops port, the stack's Redis).
    pub fn console_config(&self) -> clokio_console::Config {
        clokio_console::Config {
            bus: self.bus_config.clone(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ops_addr: None,
            redis_url: self.redis_url.clone(),
            public_origin: None,
            session_idle: Duration::from_secs(12 * 3600),
            session_max: Duration::from_secs(7 * 24 * 3600),
            trust_forwarded: false,
            signin_account_limit: 5,
            signin_address_limit: 20,
            signin_window: Duration::from_secs(15 * 60),
            admin_check: Duration::from_secs(1),
        }
    }

    pub async fn start_console(&mut self) -> Console {
        let config = self.console_config();
        self.start_console_with(config).await
    }

    /// Starts a console with `config` and waits until it answers.
    pub async fn start_console_with(&mut self, config: clokio_console::Config) -> Console {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = self.stopper();
        self.tasks.push(tokio::spawn(async move {
            if let Err(err) = clokio_console::run(config, listener, stop).await {
                panic!("console failed: {err}");
            }
        }));
        let console = Console::new(format!("http://{addr}"));
        console.wait_healthy().await;
        console
    }

    /// Makes an admin of `org` over the bus (as `clokioctl admin create` does).
    pub async fn create_admin(
        &self,
        org: OrgId,
        email: &str,
        name: &str,
        password: Option<&str>,
    ) -> CreatedAdmin {
        self.bus
            .with_timeout(Duration::from_secs(20))
            .call::<AdminCreateOp>(&AdminCreate {
                org_id: org,
                email: Email::parse(email).expect("email"),
                name: name.to_owned(),
                password: password.map(str::to_owned),
                location: None,
            })
            .await
            .expect("admin created")
    }
}

/// A console's address.
#[derive(Clone)]
pub struct Console {
    pub url: String,
    client: reqwest::Client,
}

/// A console answer, read whole.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The whole `Set-Cookie` header that sets the cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// Where a redirect goes.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The page's CSRF token (its first `_csrf` field).
    pub fn csrf(&self) -> Option<String> {
        let at = self.text.find(r#"name="_csrf" value=""#)? + r#"name="_csrf" value=""#.len();
        let end = self.text[at..].find('"')?;
        Some(self.text[at..at + end].to_owned())
    }

    /// Asserts a 303 to `to` (a prefix of the Location).
    #[track_caller]
    pub fn expect_redirect(&self, to: &str) -> &Self {
        assert_eq!(self.status, 303, "expected a redirect; body: {}", self.text);
        let location = self.location().unwrap_or_default();
        assert!(location.starts_with(to), "redirect to {location}, not {to}");
        self
    }

    /// Asserts a 303 to exactly `to`.
    #[track_caller]
    pub fn expect_redirect_to(&self, to: &str) -> &Self {
        assert_eq!(self.status, 303, "expected a redirect; body: {}", self.text);
        assert_eq!(self.location(), Some(to));
        self
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts the page shows `message` beside `field` (the element its input points to).
    #[track_caller]
    pub fn expect_field_error(&self, field: &str, message: &str) -> &Self {
        self.expect_text(message);
        assert!(
            self.text.contains(&format!(r#"id="{field}-error""#)),
            "no message beside {field}; body: {}",
            self.text
        );
        self
    }

    /// Asserts the page shows `text` (HTML-escaped as askama escapes it).
    #[track_caller]
    pub fn expect_text(&self, text: &str) -> &Self {
        let escaped = html_escape(text);
        assert!(
            self.text.contains(&escaped),
            "page lacks {text:?}; body: {}",
            self.text
        );
        self
    }
}

/// Escapes text as the console's templates do (askama's own HTML escaper).
pub fn html_escape(text: &str) -> String {
    askama::filters::escape(text, askama::filters::Html)
        .map(|escaped| escaped.to_string())
        .unwrap_or_default()
}

impl Console {
    pub fn new(url: String) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self { url, client }
    }

    pub async fn wait_healthy(&self) {
        crate::http::wait_healthy(&self.client, &self.url, "console").await;
    }

    /// A browser of its own (no cookies yet).
    pub fn browser(&self) -> Browser {
        Browser {
            console: self.clone(),
            cookies: HashMap::new(),
            csrf: None,
        }
    }
}

/// One person's browser: its cookies, and the CSRF token of the last page it saw.
pub struct Browser {
    pub console: Console,
    pub cookies: HashMap<String, String>,
    pub csrf: Option<String>,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header("cookie", self.cookie_header())
        };
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        for value in headers.get_all("set-cookie") {
            let value = value.to_str().unwrap_or_default();
            let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
            if let Some((name, v)) = pair.split_once('=') {
                if attributes.contains("Max-Age=0") || v.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), v.to_owned());
                }
            }
        }
        let text = res.text().await.expect("body read");
        let page = Page {
            status,
            headers,
            text,
        };
        if let Some(token) = page.csrf() {
            self.csrf = Some(token);
        }
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self
            .console
            .client
            .get(format!("{}{}", self.console.url, path))
            .header("accept", "text/html");
        self.send(req).await
    }

    /// Posts a form with the last page's CSRF token and the console's own `Origin`.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = self.csrf.clone().unwrap_or_default();
        let mut fields: Vec<(&str, &str)> = vec![("_csrf", &csrf)];
        fields.extend_from_slice(form);
        self.post_raw(path, &fields, Some(&self.console.url.clone()))
            .await
    }

    /// Posts exactly `fields`, with `origin` (None: no Origin header).
    pub async fn post_raw(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Page {
        let mut req = self
            .console
            .client
            .post(format!("{}{}", self.console.url, path))
            .header("accept", "text/html")
            .form(fields);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        self.send(req).await
    }

    /// Signs in through the form; returns the answer to the POST.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        self.get("/sign-in").await.expect(200);
        self.post("/sign-in", &[("email", email), ("password", password)])
            .await
    }

    /// Signs in, asserts it worked, and opens the first page (so the session's CSRF token is
    /// at hand).
    pub async fn signed_in(console: &Console, email: &str, password: &str) -> Browser {
        let mut b = console.browser();
        b.sign_in(email, password).await.expect_redirect("/");
        b.get("/attendance/today").await.expect(200);
        b
    }
}

//! Clients of the gateway: a tenant (an org and its key), a gateway client and its responses.

use std::net::SocketAddr;
use std::time::Duration;

use clokio_bus::ops::Organization;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::Metrics;
use serde_json::json;

/// An organization and one of its keys.
pub struct Tenant {
    pub org: Organization,
    pub key: String,
}

/// An HTTP client bound to one gateway.
#[derive(Clone)]
pub struct Gateway {
    pub url: String,
    /// The ops port's base URL.
    pub ops: Option<String>,
    pub client: reqwest::Client,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Res {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// Asserts status and the envelope's shape, then returns self.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        let want = if status < 400 { "success" } else { "error" };
        assert_eq!(
            self.body["status"], want,
            "envelope status; body: {}",
            self.text
        );
        assert!(
            self.body["message"].is_string(),
            "envelope message; body: {}",
            self.text
        );
        if status >= 400 {
            assert!(
                self.body["data"].is_null(),
                "error data must be null; body: {}",
                self.text
            );
        }
        self
    }

    /// Asserts an error status and its exact message.
    #[track_caller]
    pub fn expect_error(self, status: u16, message: &str) -> Self {
        let res = self.expect(status);
        assert_eq!(res.message(), message, "body: {}", res.text);
        res
    }
}

impl Gateway {
    pub fn new(url: String) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        Self {
            url,
            ops: None,
            client,
        }
    }

    /// The gateway's ops port (`/metrics`), when it serves one.
    pub fn with_ops(mut self, addr: Option<SocketAddr>) -> Self {
        self.ops = addr.map(|a| format!("http://{a}"));
        self
    }

    /// Waits (up to 5 s) until the gateway answers `/healthz`.
    pub async fn wait_healthy(&self) {
        wait_healthy(&self.client, &self.url, "gateway").await;
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Res {
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        key: Option<&str>,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let mut req = self.client.request(method, format!("{}{}", self.url, path));
        if let Some(key) = key {
            req = req.header("X-API-Key", key);
        }
        req
    }

    pub async fn get(&self, key: &str, path: &str) -> Res {
        self.send(self.request(reqwest::Method::GET, Some(key), path))
            .await
    }

    pub async fn post(&self, key: &str, path: &str, body: &Value) -> Res {
        self.send(
            self.request(reqwest::Method::POST, Some(key), path)
                .json(body),
        )
        .await
    }

    /// `POST /api/v1/attendance/clock-in` for the employee `code`, with nothing else.
    pub async fn clock_in(&self, key: &str, code: &str) -> Res {
        self.clock(key, "clock-in", code).await
    }

    /// `POST /api/v1/attendance/clock-out` for the employee `code`, with nothing else.
    pub async fn clock_out(&self, key: &str, code: &str) -> Res {
        self.clock(key, "clock-out", code).await
    }

    /// `POST /api/v1/attendance/{action}` (`clock-in`, `clock-out`, `break-start`, `break-end`)
    /// for the employee `code`, with nothing else.
    pub async fn clock(&self, key: &str, action: &str, code: &str) -> Res {
        let path = format!("/api/v1/attendance/{action}");
        self.post(key, &path, &serde_json::json!({ "nip": code }))
            .await
    }

    /// `POST /api/v1/webhooks` with `body`, which must be created (201): the webhook's data.
    pub async fn webhook(&self, key: &str, body: Value) -> Value {
        self.post(key, "/api/v1/webhooks", &body)
            .await
            .expect(201)
            .data()
            .clone()
    }

    pub async fn patch(&self, key: &str, path: &str, body: &Value) -> Res {
        self.send(
            self.request(reqwest::Method::PATCH, Some(key), path)
                .json(body),
        )
        .await
    }

    /// What the ops port's `/metrics` serves now.
    pub async fn metrics(&self) -> Metrics {
        let ops = self.ops.as_deref().expect("a gateway with an ops port");
        let res = self
            .client
            .get(format!("{ops}/metrics"))
            .send()
            .await
            .expect("metrics");
        Metrics(res.text().await.expect("metrics text"))
    }

    pub async fn delete(&self, key: &str, path: &str) -> Res {
        self.send(self.request(reqwest::Method::DELETE, Some(key), path))
            .await
    }

    /// Creates an employee at "Main Office" and returns its data.
    pub async fn create_employee(&self, key: &str, name: &str, extra: Value) -> Value {
        let mut body = json!({
            "name": name,
            "email": format!("{}@company.com", uuid::Uuid::new_v4().simple()),
            "location": "Main Office",
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let res = self.post(key, "/api/v1/employees", &body).await.expect(201);
        res.data().clone()
    }
}

/// Waits (up to 5 s) until the server at `url` answers `/healthz`.
pub(crate) async fn wait_healthy(client: &reqwest::Client, url: &str, what: &str) {
    for _ in 0..200 {
        if client.get(format!("{url}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} did not come up");
}

//! A webhook receiver: records what arrives, answers as scripted.

use std::time::Duration;

use serde_json::Value;

/// One request a [`Receiver`] took.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: std::time::Instant,
    pub path: String,
    pub headers: axum::http::HeaderMap,
    pub body: axum::body::Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// How a [`Receiver`] answers one request.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
    pub body: String,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
            body: "ok".to_owned(),
        }
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    script: std::collections::VecDeque<Answer>,
}

/// A capturing HTTP receiver for webhook tests: records every request and answers as scripted
/// (200 when nothing is scripted). Stops with the test.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: std::sync::Arc<std::sync::Mutex<ReceiverState>>,
    arrived: std::sync::Arc<tokio::sync::Notify>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let receiver = Self {
            url,
            state: std::sync::Arc::default(),
            arrived: std::sync::Arc::default(),
        };
        let r = receiver.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let r = r.clone();
                async move {
                    let answer = {
                        let mut s = r.state.lock().unwrap();
                        s.received.push(Received {
                            at: std::time::Instant::now(),
                            path: uri.path().to_owned(),
                            headers,
                            body,
                        });
                        s.script.pop_front()
                    };
                    r.arrived.notify_waiters();
                    let answer = answer.unwrap_or_else(|| Answer::status(200));
                    tokio::time::sleep(answer.delay).await;
                    let mut res =
                        axum::response::Response::new(axum::body::Body::from(answer.body));
                    *res.status_mut() =
                        axum::http::StatusCode::from_u16(answer.status).expect("status");
                    for (k, v) in answer.headers {
                        res.headers_mut().insert(
                            axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                            axum::http::HeaderValue::from_str(&v).expect("value"),
                        );
                    }
                    res
                }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver
    }

    /// Scripts the next answers, in order.
    pub fn answer(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.lock().unwrap().script.extend(answers);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Waits until `n` requests have arrived (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.received();
                assert!(
                    got.len() >= n,
                    "{} of {n} requests within {within:?}",
                    got.len()
                );
                return got;
            }
        }
    }
}

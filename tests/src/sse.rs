//! A Server-Sent Events reader for the gateway's event stream: opens it as a client would and
//! parses the bytes on the wire into frames.

use std::time::Duration;

use crate::{Gateway, Res};

/// One frame: an event, or only a comment (a heartbeat) or a `retry:`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub comments: Vec<String>,
    pub retry: Option<u64>,
}

impl Frame {
    /// The `data:` as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.data.as_deref().expect("a data line")).expect("JSON data")
    }

    pub fn seq(&self) -> u64 {
        self.id
            .as_deref()
            .expect("an id")
            .parse()
            .expect("a numeric id")
    }
}

pub struct EventStream {
    res: reqwest::Response,
    buf: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Gateway {
    /// Opens `/api/v1/events/stream?{query}` with `key`, resuming after `last_event_id` (sent as
    /// the `Last-Event-ID` header) when given. A refusal comes back as the response.
    pub async fn event_stream(
        &self,
        key: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Result<EventStream, Res> {
        // No overall timeout: a stream stays open.
        let client = reqwest::Client::new();
        let mut req = client
            .get(format!("{}/api/v1/events/stream?{query}", self.url))
            .header("x-api-key", key);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.expect("stream request sent");
        if res.status() != 200 {
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let text = res.text().await.expect("body read");
            return Err(Res {
                status,
                headers,
                body: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
                text,
            });
        }
        Ok(EventStream {
            headers: res.headers().clone(),
            res,
            buf: String::new(),
        })
    }
}

impl EventStream {
    /// The next frame, or `None` when the server ended the stream (cleanly or not). Panics when
    /// nothing comes for `wait`.
    pub async fn frame(&mut self, wait: Duration) -> Option<Frame> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                return Some(parse(&block));
            }
            match tokio::time::timeout(wait, self.res.chunk()).await {
                Err(_) => panic!("no event stream frame within {wait:?}"),
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) => return None,
            }
        }
    }

    /// The next frame that carries an event (heartbeats skipped); panics when the stream ends
    /// or nothing comes within `wait`.
    pub async fn event(&mut self, wait: Duration) -> Frame {
        loop {
            let frame = self.frame(wait).await.expect("the stream ended");
            if frame.event.is_some() || frame.data.is_some() {
                return frame;
            }
        }
    }

    /// The next `n` events.
    pub async fn events(&mut self, n: usize, wait: Duration) -> Vec<Frame> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.event(wait).await);
        }
        out
    }

    /// Asserts that no event comes within `quiet` (heartbeats allowed).
    pub async fn expect_no_event(&mut self, quiet: Duration) {
        let until = tokio::time::Instant::now() + quiet;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            let next = tokio::time::timeout(left, self.frame(quiet + Duration::from_secs(1))).await;
            match next {
                Err(_) => return,
                Ok(Some(f)) if f.event.is_none() && f.data.is_none() => continue,
                Ok(other) => panic!("expected no event, got {other:?}"),
            }
        }
    }
}

fn parse(block: &str) -> Frame {
    let mut frame = Frame::default();
    for line in block.lines() {
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "" => frame.comments.push(value.to_owned()),
            "id" => frame.id = Some(value.to_owned()),
            "event" => frame.event = Some(value.to_owned()),
            "data" => {
                let data = frame.data.get_or_insert_with(String::new);
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            "retry" => frame.retry = value.parse().ok(),
            _ => {}
        }
    }
    frame
}

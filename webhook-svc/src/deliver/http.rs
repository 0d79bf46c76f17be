//! One HTTP attempt: the request, its signature, and what is kept of the answer.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::State;
use crate::render;
use crate::subs::SubRow;

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What one HTTP attempt came to.
pub(super) struct Outcome {
    pub(super) status: u16,
    pub(super) error: Option<&'static str>,
    pub(super) latency: Duration,
    pub(super) body: String,
    pub(super) retry_after: Option<Duration>,
}

/// One HTTP attempt; `signing`: the secrets that sign it (a generic delivery), or none. (Its
/// caller keeps its message alive while the receiver takes its time.)
pub(super) async fn post(
    state: &State,
    sub: &SubRow,
    id: Uuid,
    body: &[u8],
    signing: Option<&[&str]>,
) -> Outcome {
    let started = Instant::now();
    let fail = |error: &'static str| Outcome {
        status: 0,
        error: Some(error),
        latency: started.elapsed(),
        body: String::new(),
        retry_after: None,
    };
    let url = match state.policy.check_url(&sub.url) {
        Ok(url) => url,
        Err(_) => return fail("blocked"),
    };
    // A literal address never meets the resolver: check it here.
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    if literal.is_some_and(|ip| !state.policy.permits(ip)) {
        return fail("blocked");
    }
    let mut req = state
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "Clokio-Webhooks/1")
        .body(body.to_vec());
    if let Some(secrets) = signing {
        let ts = Utc::now().timestamp();
        let webhook_id = id.to_string();
        req = req
            .header("webhook-id", &webhook_id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                render::signature(secrets, &webhook_id, ts, body),
            );
    }
    let res = req.send().await;
    match res {
        Ok(res) => {
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, Utc::now()));
            let mut body = Vec::new();
            let mut res = res;
            while let Ok(Some(chunk)) = res.chunk().await {
                body.extend_from_slice(&chunk);
                if body.len() >= 4096 {
                    break;
                }
            }
            Outcome {
                status,
                error: (!(200..300).contains(&status)).then_some("http"),
                latency: started.elapsed(),
                body: logged_body(&body),
                retry_after,
            }
        }
        Err(err) => fail(error_kind(&err)),
    }
}

/// A `Retry-After` value: delay seconds or an HTTP date (RFC 9110), as a wait from `now`, at most
/// `MAX_RETRY_AFTER`. A date in the past means no wait.
pub(super) fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A response body as the delivery log keeps it: text (invalid UTF-8 and NUL, which Postgres text
/// cannot hold, replaced) of at most 4 KiB, cut at a character boundary.
pub(super) fn logged_body(body: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(body).replace('\0', "\u{FFFD}");
    let mut end = text.len().min(4096);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// What kind of failure a request error is: `timeout`, `blocked` (the guard refused every
/// address), `dns` or `connection`.
fn error_kind(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        return "timeout";
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = source {
        if e.is::<crate::guard::Blocked>() {
            return "blocked";
        }
        source = e.source();
    }
    let text = format!("{err:?}").to_lowercase();
    if text.contains("blocked") {
        "blocked"
    } else if text.contains("dns") || text.contains("resolve") || text.contains("lookup") {
        "dns"
    } else {
        "connection"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Sun, 29 Nov 2026 10:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after("Sun, 29 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("99999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn the_logged_body_is_storable_text_of_at_most_4_kib() {
        assert_eq!(logged_body(b"ok\0\xff"), "ok\u{FFFD}\u{FFFD}");
        let long = "é".repeat(3000);
        let cut = logged_body(long.as_bytes());
        assert_eq!(cut.len(), 4096);
        assert!(cut.chars().all(|c| c == 'é'));
        let odd = format!("a{long}");
        assert_eq!(logged_body(odd.as_bytes()).len(), 4095);
    }
}

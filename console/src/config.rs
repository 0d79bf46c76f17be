//! Console configuration, from `CLOKIO_*` environment variables (see docs/configuration.md).

use std::net::SocketAddr;
use std::time::Duration;

use clokio_runtime::config::{self, BusConfig, ConfigError};

#[derive(Clone, Debug)]
pub struct Config {
    pub bus: BusConfig,
    /// `CLOKIO_CONSOLE_ADDR` (default `0.0.0.0:8081`).
    pub addr: SocketAddr,
    /// `CLOKIO_CONSOLE_OPS_ADDR`: `/healthz`, `/readyz`, `/metrics` (default `0.0.0.0:9105`; `off`).
    pub ops_addr: Option<SocketAddr>,
    /// `CLOKIO_REDIS_URL`: where sessions and sign-in throttles live.
    pub redis_url: String,
    /// `CLOKIO_CONSOLE_PUBLIC_URL`: the origin people reach the console at (`https://admin.example.com`).
    /// Forms are accepted only from it; over https the session cookie is `__Host-` and `Secure`.
    /// Unset: the origin is the request's own `Host`, over http.
    pub public_origin: Option<String>,
    /// `CLOKIO_CONSOLE_SESSION_IDLE_MS`: a session unused this long ends (12 h).
    pub session_idle: Duration,
    /// `CLOKIO_CONSOLE_SESSION_MAX_MS`: a session ends this long after sign-in, used or not (7 days).
    pub session_max: Duration,
    /// `CLOKIO_CONSOLE_TRUST_FORWARDED`: take the client address for sign-in throttling from the
    /// last `X-Forwarded-For` entry (behind a proxy that sets it), not the TCP peer (false).
    pub trust_forwarded: bool,
    /// `CLOKIO_CONSOLE_SIGNIN_ACCOUNT_LIMIT`: failed sign-ins per account per window (5).
    pub signin_account_limit: u32,
    /// `CLOKIO_CONSOLE_SIGNIN_ADDRESS_LIMIT`: failed sign-ins per client address per window (20).
    pub signin_address_limit: u32,
    /// `CLOKIO_CONSOLE_SIGNIN_WINDOW_MS`: the throttling window (15 minutes).
    pub signin_window: Duration,
    /// `CLOKIO_CONSOLE_ADMIN_CHECK_MS`: how long an admin's role and password version are trusted
    /// before they are asked again; bounds how late a removed admin's sessions end (1000).
    pub admin_check: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let public_origin = config::var("CLOKIO_CONSOLE_PUBLIC_URL")
            .map(|url| {
                origin_of(&url).ok_or_else(|| ConfigError {
                    var: "CLOKIO_CONSOLE_PUBLIC_URL".to_owned(),
                    value: url.clone(),
                    reason: "must be an http:// or https:// URL".to_owned(),
                })
            })
            .transpose()?;
        let trust_forwarded = match config::var("CLOKIO_CONSOLE_TRUST_FORWARDED").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(ConfigError {
                    var: "CLOKIO_CONSOLE_TRUST_FORWARDED".to_owned(),
                    value: other.to_owned(),
                    reason: "must be true or false".to_owned(),
                });
            }
        };
        Ok(Self {
            bus: BusConfig::from_env()?,
            addr: config::parse(
                "CLOKIO_CONSOLE_ADDR",
                SocketAddr::from(([0, 0, 0, 0], 8081)),
            )?,
            ops_addr: config::ops_addr(
                "CLOKIO_CONSOLE_OPS_ADDR",
                SocketAddr::from(([0, 0, 0, 0], 9105)),
            )?,
            redis_url: config::string("CLOKIO_REDIS_URL", "redis://127.0.0.1:6379"),
            public_origin,
            session_idle: config::millis("CLOKIO_CONSOLE_SESSION_IDLE_MS", 12 * 3600 * 1000)?,
            session_max: config::millis("CLOKIO_CONSOLE_SESSION_MAX_MS", 7 * 24 * 3600 * 1000)?,
            trust_forwarded,
            signin_account_limit: config::count("CLOKIO_CONSOLE_SIGNIN_ACCOUNT_LIMIT", 5)?,
            signin_address_limit: config::count("CLOKIO_CONSOLE_SIGNIN_ADDRESS_LIMIT", 20)?,
            signin_window: config::millis("CLOKIO_CONSOLE_SIGNIN_WINDOW_MS", 15 * 60 * 1000)?,
            admin_check: config::millis("CLOKIO_CONSOLE_ADMIN_CHECK_MS", 1000)?,
        })
    }

    /// Whether the console is served over https (the session cookie is then `__Host-`, `Secure`).
    pub fn https(&self) -> bool {
        self.public_origin
            .as_deref()
            .is_some_and(|o| o.starts_with("https://"))
    }
}

/// `scheme://host[:port]` of an http(s) URL, lower-cased, without a path.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    if host.is_empty() || host.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{}", host.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://Admin.Example.com/console/").as_deref(),
            Some("https://admin.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8081").as_deref(),
            Some("http://127.0.0.1:8081")
        );
        assert_eq!(origin_of("ftp://x"), None);
        assert_eq!(origin_of("https://"), None);
        assert_eq!(origin_of("https://u@x"), None);
    }
}

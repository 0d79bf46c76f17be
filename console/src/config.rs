//! Console configuration: each setting's `CLOKIO_*` variable, default and check (`--help` lists
//! them; docs/configuration.md too).

use std::net::SocketAddr;
use std::time::Duration;

use clokio_runtime::config::{self, BusConfig};

#[derive(Clone, Debug, clap::Parser)]
#[command(name = "clokio-console", about = "Clokio's admin console")]
pub struct Config {
    #[command(flatten)]
    pub bus: BusConfig,
    /// Where the console listens.
    #[arg(long, env = "CLOKIO_CONSOLE_ADDR", default_value = "0.0.0.0:8081")]
    pub addr: SocketAddr,
    /// `/healthz`, `/readyz` and `/metrics`; `off` for none.
    #[arg(long, env = "CLOKIO_CONSOLE_OPS_ADDR", default_value = "0.0.0.0:9105",
        value_parser = config::ops_addr)]
    pub ops_addr: std::option::Option<SocketAddr>,
    /// Where sessions and sign-in throttles live.
    #[arg(
        long,
        env = "CLOKIO_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// The origin people reach the console at (`https://admin.example.com`). Forms are accepted
    /// only from it; over https the session cookie is `__Host-` and `Secure`. Unset: the origin is
    /// the request's own `Host`, over http.
    #[arg(long = "public-url", env = "CLOKIO_CONSOLE_PUBLIC_URL", value_parser = public_origin)]
    pub public_origin: Option<String>,
    /// A session unused this long ends, in ms (12 h).
    #[arg(long, env = "CLOKIO_CONSOLE_SESSION_IDLE_MS", default_value = "43200000",
        value_parser = config::millis)]
    pub session_idle: Duration,
    /// A session ends this long after sign-in, used or not, in ms (7 days).
    #[arg(long, env = "CLOKIO_CONSOLE_SESSION_MAX_MS", default_value = "604800000",
        value_parser = config::millis)]
    pub session_max: Duration,
    /// Take the client address for sign-in throttling from the last `X-Forwarded-For` entry
    /// (behind a proxy that sets it), not the TCP peer.
    #[arg(long, env = "CLOKIO_CONSOLE_TRUST_FORWARDED", default_value = "false",
        action = clap::ArgAction::Set, value_parser = config::boolean)]
    pub trust_forwarded: bool,
    /// Failed sign-ins per account per window.
    #[arg(long, env = "CLOKIO_CONSOLE_SIGNIN_ACCOUNT_LIMIT", default_value = "5",
        value_parser = config::at_least_one::<u32>)]
    pub signin_account_limit: u32,
    /// Failed sign-ins per client address per window.
    #[arg(long, env = "CLOKIO_CONSOLE_SIGNIN_ADDRESS_LIMIT", default_value = "20",
        value_parser = config::at_least_one::<u32>)]
    pub signin_address_limit: u32,
    /// The sign-in throttling window, in ms (15 minutes).
    #[arg(long, env = "CLOKIO_CONSOLE_SIGNIN_WINDOW_MS", default_value = "900000",
        value_parser = config::millis)]
    pub signin_window: Duration,
    /// How long an admin's role and password version are trusted before they are asked again, in
    /// ms; bounds how late a removed admin's sessions end.
    #[arg(long, env = "CLOKIO_CONSOLE_ADMIN_CHECK_MS", default_value = "1000",
        value_parser = config::millis)]
    pub admin_check: Duration,
}

fn public_origin(url: &str) -> Result<String, String> {
    origin_of(url).ok_or_else(|| "must be an http:// or https:// URL".to_owned())
}

impl Config {
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

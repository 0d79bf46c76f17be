//! Reading configuration from `CLOKIO_*` environment variables: defaults in code, a value from
//! the environment when set, and an error that names the variable when it does not parse.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clokio_bus::{Prefix, Subjects};

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var}={value:?}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub value: String,
    pub reason: String,
}

/// The raw value of `var`, if set and not empty.
pub fn var(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// `var` parsed with `FromStr`, or `default` when unset.
pub fn parse<T>(var_name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match var(var_name) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|err: T::Err| ConfigError {
            var: var_name.to_owned(),
            reason: err.to_string(),
            value,
        }),
    }
}

/// A count that must be at least 1 (pool sizes, concurrency bounds, byte limits).
pub fn count<T>(var_name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + From<u8> + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let n = parse(var_name, default)?;
    if n < T::from(1) {
        return Err(ConfigError {
            var: var_name.to_owned(),
            value: n.to_string(),
            reason: "must be at least 1".to_owned(),
        });
    }
    Ok(n)
}

/// A duration in milliseconds.
pub fn millis(var_name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
    let ms: u64 = parse(var_name, default_ms)?;
    if ms == 0 {
        return Err(ConfigError {
            var: var_name.to_owned(),
            value: "0".to_owned(),
            reason: "must be greater than zero".to_owned(),
        });
    }
    Ok(Duration::from_millis(ms))
}

/// The ops port's address (`/healthz`, `/readyz`, `/metrics`): `default` unless set; `off`
/// disables it.
pub fn ops_addr(var_name: &str, default: SocketAddr) -> Result<Option<SocketAddr>, ConfigError> {
    match var(var_name).as_deref() {
        Some("off") => Ok(None),
        _ => parse(var_name, default).map(Some),
    }
}

pub fn string(var_name: &str, default: &str) -> String {
    var(var_name).unwrap_or_else(|| default.to_owned())
}

/// The service's own database URL (`CLOKIO_<SERVICE>_DATABASE_URL`), else the shared
/// `CLOKIO_DATABASE_URL`, else the local default.
pub fn database_url(service_var: &str) -> String {
    var(service_var)
        .or_else(|| var("CLOKIO_DATABASE_URL"))
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://clokio:clokio@127.0.0.1:5432/clokio";
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// What every service and tool needs to reach the bus.
#[derive(Clone, Debug)]
pub struct BusConfig {
    /// One NATS server's URL, or a cluster's as a comma-separated list (see [`nats_servers`]).
    pub nats_url: String,
    pub subjects: Subjects,
    pub request_timeout: Duration,
    /// Copies of each JetStream stream the services create (`CLOKIO_STREAM_REPLICAS`, 1–5).
    pub stream_replicas: usize,
}

impl BusConfig {
    /// `CLOKIO_NATS_URL`, `CLOKIO_SUBJECT_PREFIX`, `CLOKIO_BUS_TIMEOUT_MS`,
    /// `CLOKIO_STREAM_REPLICAS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let prefix = string("CLOKIO_SUBJECT_PREFIX", "clokio");
        let prefix = Prefix::parse(&prefix).map_err(|reason| ConfigError {
            var: "CLOKIO_SUBJECT_PREFIX".to_owned(),
            value: prefix.clone(),
            reason,
        })?;
        let nats_url = string("CLOKIO_NATS_URL", DEFAULT_NATS_URL);
        nats_servers(&nats_url).map_err(|reason| ConfigError {
            var: "CLOKIO_NATS_URL".to_owned(),
            value: nats_url.clone(),
            reason,
        })?;
        Ok(Self {
            nats_url,
            subjects: Subjects::new(prefix),
            request_timeout: millis("CLOKIO_BUS_TIMEOUT_MS", 5_000)?,
            stream_replicas: stream_replicas()?,
        })
    }
}

impl BusConfig {
    /// The servers to connect to (empty when `nats_url` does not parse, which `from_env` refuses).
    pub fn servers(&self) -> Vec<async_nats::ServerAddr> {
        nats_servers(&self.nats_url).unwrap_or_default()
    }
}

/// The servers of a `CLOKIO_NATS_URL`: one URL, or every node of a cluster as a comma-separated
/// list. The client connects to one of them (in random order), moves to another when that one
/// dies, and also learns the cluster's other nodes from the server it reaches.
pub fn nats_servers(url: &str) -> Result<Vec<async_nats::ServerAddr>, String> {
    url.split(',')
        .map(str::trim)
        .map(|one| {
            if one.is_empty() {
                return Err("an empty server in the list".to_owned());
            }
            one.parse::<async_nats::ServerAddr>()
                .map_err(|err| format!("{one:?} is not a NATS server URL: {err}"))
        })
        .collect()
}

/// `CLOKIO_STREAM_REPLICAS`: 1 on a single NATS server, 3 on a production cluster; JetStream
/// allows at most 5.
fn stream_replicas() -> Result<usize, ConfigError> {
    let n: usize = parse("CLOKIO_STREAM_REPLICAS", 1)?;
    if !(1..=5).contains(&n) {
        return Err(ConfigError {
            var: "CLOKIO_STREAM_REPLICAS".to_owned(),
            value: n.to_string(),
            reason: "must be 1 to 5".to_owned(),
        });
    }
    Ok(n)
}

/// For tests of a service binary: runs `bin` with `var=value` and returns what it printed to
/// stderr when it refused to start (exit status 2), or `None` when it did anything else.
pub fn refusal(bin: &str, var: &str, value: &str) -> Option<String> {
    let mut child = std::process::Command::new(bin)
        .env(var, value)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    // A binary that accepted the value goes on to connect and serve: give it a moment, then stop it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut()?, &mut stderr).ok()?;
    (status.code() == Some(2)).then_some(stderr)
}

#[cfg(test)]
mod tests {
    use super::nats_servers;

    #[test]
    fn a_cluster_is_a_comma_separated_list_of_its_nodes() {
        let servers = nats_servers("nats://10.0.0.1:4222, nats://10.0.0.2:4222,nats://n3:4223")
            .expect("three servers");
        let hosts: Vec<(String, u16)> = servers
            .iter()
            .map(|s| (s.host().to_owned(), s.port()))
            .collect();
        assert_eq!(
            hosts,
            [
                ("10.0.0.1".to_owned(), 4222),
                ("10.0.0.2".to_owned(), 4222),
                ("n3".to_owned(), 4223)
            ]
        );
        assert_eq!(nats_servers("nats://127.0.0.1:4222").unwrap().len(), 1);
        for bad in [
            "nats://a:4222,",
            "nats://a:4222,,nats://b:4222",
            "http://a:4222",
            "nats://a:port",
        ] {
            assert!(nats_servers(bad).is_err(), "{bad} accepted");
        }
    }
}

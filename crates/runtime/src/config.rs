//! Reading configuration. Each service declares its settings once, as a `clap::Parser` struct:
//! the `CLOKIO_*` variable, the default, the check and the doc of each together, and `--help`
//! lists them. A value from the command line wins over the variable, the variable over the
//! default; an empty variable counts as unset. A value that does not pass its check is a
//! [`ConfigError`] naming the variable.

use std::ffi::OsString;
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

/// Why a configuration was not read.
#[derive(Debug)]
pub enum Refused {
    /// `--help` or `--version`: clap's answer, to print before a clean exit.
    Help(clap::Error),
    /// A setting's value failed its check, or a required one is missing.
    Setting(ConfigError),
    /// The command line itself is wrong (an unknown flag): clap's own message.
    Usage(clap::Error),
}

/// The configuration `C` from `args` (the program name first), the environment and defaults.
pub fn from_args<C: clap::Parser>(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<C, Refused> {
    // clap takes a variable that is set but empty as an empty value; unset it, as the services
    // always have.
    let mut command = C::command().mut_args(|arg| match arg.get_env().map(std::env::var_os) {
        Some(Some(value)) if value.is_empty() => arg.env(None),
        _ => arg,
    });
    let parsed = command
        .try_get_matches_from_mut(args)
        .and_then(|mut matches| C::from_arg_matches_mut(&mut matches));
    parsed.map_err(|err| match err.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
            Refused::Help(err)
        }
        // The variables as declared: an empty one was unset above, but a refusal still names it.
        _ => match setting_error(&built(C::command()), &err) {
            Some(setting) => Refused::Setting(setting),
            None => Refused::Usage(err),
        },
    })
}

/// The configuration `C` from the environment and defaults alone (for tools whose own command
/// line is something else).
pub fn from_env<C: clap::Parser>() -> Result<C, ConfigError> {
    match from_args::<C>(["clokio"]) {
        Ok(config) => Ok(config),
        Err(Refused::Setting(err)) => Err(err),
        Err(Refused::Help(err) | Refused::Usage(err)) => Err(ConfigError {
            var: String::new(),
            value: String::new(),
            reason: err.to_string(),
        }),
    }
}

fn built(mut command: clap::Command) -> clap::Command {
    command.build();
    command
}

/// clap's error as the variable it is about, when it is about one (`command` is built).
fn setting_error(command: &clap::Command, err: &clap::Error) -> Option<ConfigError> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let named = match err.get(ContextKind::InvalidArg)? {
        ContextValue::String(name) => name.clone(),
        ContextValue::Strings(names) => names.first()?.clone(),
        _ => return None,
    };
    let arg = command
        .get_arguments()
        .find(|arg| arg.to_string() == named)?;
    let var = arg.get_env()?.to_string_lossy().into_owned();
    let value = match err.get(ContextKind::InvalidValue) {
        Some(_) if arg.is_hide_env_values_set() => "(not shown)".to_owned(),
        Some(ContextValue::String(value)) => value.clone(),
        _ => String::new(),
    };
    let reason = match err.kind() {
        ErrorKind::MissingRequiredArgument => "is required (see --help)".to_owned(),
        _ => std::error::Error::source(err)
            .map_or_else(|| err.kind().to_string(), ToString::to_string),
    };
    Some(ConfigError { var, value, reason })
}

/// The raw value of `var`, if set and not empty.
pub fn var(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// A count that must be at least 1 (pool sizes, concurrency bounds, byte limits).
pub fn at_least_one<T>(s: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd + From<u8>,
    T::Err: std::fmt::Display,
{
    let n: T = s.parse().map_err(|err: T::Err| err.to_string())?;
    if n < T::from(1) {
        return Err("must be at least 1".to_owned());
    }
    Ok(n)
}

/// A duration in milliseconds, more than zero.
pub fn millis(s: &str) -> Result<Duration, String> {
    let ms: u64 = s
        .parse()
        .map_err(|err: std::num::ParseIntError| err.to_string())?;
    if ms == 0 {
        return Err("must be greater than zero".to_owned());
    }
    Ok(Duration::from_millis(ms))
}

/// `true` or `false` (`1` or `0`).
pub fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    }
}

/// An ops port's address (`/healthz`, `/readyz`, `/metrics`); `off` disables it.
pub fn ops_addr(s: &str) -> Result<Option<SocketAddr>, String> {
    match s {
        "off" => Ok(None),
        _ => s
            .parse()
            .map(Some)
            .map_err(|err: std::net::AddrParseError| err.to_string()),
    }
}

/// The shared `CLOKIO_DATABASE_URL`, else the local default: what a service's own database URL
/// variable falls back to.
pub fn shared_database_url() -> String {
    var("CLOKIO_DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

/// The service's own database URL (`CLOKIO_<SERVICE>_DATABASE_URL`), else the shared
/// `CLOKIO_DATABASE_URL`, else the local default.
pub fn database_url(service_var: &str) -> String {
    var(service_var).unwrap_or_else(shared_database_url)
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://clokio:clokio@127.0.0.1:5432/clokio";
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// What every service and tool needs to reach the bus.
#[derive(Clone, Debug, clap::Args)]
pub struct BusConfig {
    /// One NATS server's URL, or a cluster's as a comma-separated list: the client connects to
    /// one of them and moves to another when that one dies.
    #[arg(long, env = "CLOKIO_NATS_URL", default_value = DEFAULT_NATS_URL, value_parser = nats_url,
        hide_env_values = true)]
    pub nats_url: String,
    /// The prefix of every subject, stream and consumer: deployments sharing one NATS differ in it.
    #[arg(long = "subject-prefix", env = "CLOKIO_SUBJECT_PREFIX", default_value = "clokio",
        value_parser = subjects)]
    pub subjects: Subjects,
    /// How long a request over the bus waits for its answer, in ms.
    #[arg(long = "bus-timeout-ms", env = "CLOKIO_BUS_TIMEOUT_MS", default_value = "5000",
        value_parser = millis)]
    pub request_timeout: Duration,
    /// Copies of each JetStream stream the services create: 1 on a single NATS server, 3 on a
    /// production cluster (JetStream allows at most 5).
    #[arg(long, env = "CLOKIO_STREAM_REPLICAS", default_value = "1", value_parser = stream_replicas)]
    pub stream_replicas: usize,
}

/// Only the bus's settings, for tools that read nothing else from the environment.
#[derive(clap::Parser)]
struct BusOnly {
    #[command(flatten)]
    bus: BusConfig,
}

impl BusConfig {
    /// `CLOKIO_NATS_URL`, `CLOKIO_SUBJECT_PREFIX`, `CLOKIO_BUS_TIMEOUT_MS`,
    /// `CLOKIO_STREAM_REPLICAS`, from the environment alone.
    pub fn from_env() -> Result<Self, ConfigError> {
        from_env::<BusOnly>().map(|only| only.bus)
    }

    /// The servers to connect to (empty when `nats_url` does not parse, which its check refuses).
    pub fn servers(&self) -> Vec<async_nats::ServerAddr> {
        nats_servers(&self.nats_url).unwrap_or_default()
    }
}

fn nats_url(s: &str) -> Result<String, String> {
    nats_servers(s).map(|_| s.to_owned())
}

fn subjects(s: &str) -> Result<Subjects, String> {
    Prefix::parse(s).map(Subjects::new)
}

fn stream_replicas(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=5).contains(&n) => Ok(n),
        _ => Err("must be 1 to 5".to_owned()),
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

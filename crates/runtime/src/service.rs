//! The start of every service binary, written once: logging and tracing, the configuration from
//! the environment (a value that does not parse, or an address the service cannot listen on,
//! exits with status 2 and names the variable), the service until SIGTERM or Ctrl-C, and the exit
//! status (1 if it failed).

use std::future::Future;
use std::process::ExitCode;

use crate::config::ConfigError;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the service `name`: its configuration from `from_env`, then `run` with a future that
/// resolves when the process is asked to stop. A [`ConfigError`] returned by `run` (an address
/// it cannot bind) is a refusal to start, like one from `from_env`.
pub async fn main<C, Fut>(
    name: &'static str,
    from_env: impl FnOnce() -> Result<C, ConfigError>,
    run: impl FnOnce(C, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
) -> ExitCode
where
    Fut: Future<Output = Result<(), BoxError>>,
{
    let telemetry = crate::telemetry::init(name);
    let config = match from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{name}: {err}");
            return ExitCode::from(2);
        }
    };
    let code = match run(config, Box::pin(crate::shutdown_signal())).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<ConfigError>() => {
            eprintln!("{name}: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            tracing::error!(%err, "{name} failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

/// A listener on `addr`, the value of `var`; failing to bind is a configuration error.
pub async fn listen(
    var: &str,
    addr: std::net::SocketAddr,
) -> Result<tokio::net::TcpListener, ConfigError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| ConfigError {
            var: var.to_owned(),
            value: addr.to_string(),
            reason: format!("cannot listen: {err}"),
        })
}

//! The start of every service binary, written once: logging and tracing, the configuration from
//! the command line and the environment (`--help` lists it; a value that does not parse, or an
//! address the service cannot listen on, exits with status 2 and names the variable), the service
//! until SIGTERM or Ctrl-C, and the exit status (1 if it failed).

use std::future::Future;
use std::process::ExitCode;

use crate::config::{ConfigError, Refused};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the service `name`: its configuration `C`, then `run` with a future that resolves when
/// the process is asked to stop. A [`ConfigError`] returned by `run` (an address it cannot bind)
/// is a refusal to start, like a bad setting.
pub async fn main<C, Fut>(
    name: &'static str,
    run: impl FnOnce(C, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
) -> ExitCode
where
    C: clap::Parser,
    Fut: Future<Output = Result<(), BoxError>>,
{
    let config = match crate::config::from_args::<C>(std::env::args_os()) {
        Ok(config) => config,
        Err(Refused::Help(help)) => {
            let _ = help.print();
            return ExitCode::SUCCESS;
        }
        Err(Refused::Setting(err)) => {
            eprintln!("{name}: {err}");
            return ExitCode::from(2);
        }
        Err(Refused::Usage(err)) => {
            let _ = err.print();
            return ExitCode::from(2);
        }
    };
    let telemetry = crate::telemetry::init(name);
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

use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = clokio_runtime::telemetry::init("console");
    let config = match clokio_console::Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("console: {err}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!(
                "console: cannot listen on {} (CLOKIO_CONSOLE_ADDR): {err}",
                config.addr
            );
            return ExitCode::from(2);
        }
    };
    let code = match clokio_console::run(config, listener, clokio_runtime::shutdown_signal()).await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "console failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = clokio_runtime::telemetry::init("gateway");
    let config = match clokio_gateway::Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("gateway: {err}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!(
                "gateway: cannot listen on {} (CLOKIO_GATEWAY_ADDR): {err}",
                config.addr
            );
            return ExitCode::from(2);
        }
    };
    let code = match clokio_gateway::run(config, listener, clokio_runtime::shutdown_signal()).await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "gateway failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = clokio_runtime::telemetry::init("webhook-svc");
    let config = match clokio_webhook_svc::Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("webhook-svc: {err}");
            return ExitCode::from(2);
        }
    };
    let code = match clokio_webhook_svc::run(config, clokio_runtime::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "webhook-svc failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

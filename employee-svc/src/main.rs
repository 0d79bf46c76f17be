use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = clokio_runtime::telemetry::init("employee-svc");
    let config = match clokio_employee_svc::Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("employee-svc: {err}");
            return ExitCode::from(2);
        }
    };
    let code = match clokio_employee_svc::run(config, clokio_runtime::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "employee-svc failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

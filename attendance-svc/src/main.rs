use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = clokio_runtime::telemetry::init("attendance-svc");
    let config = match clokio_attendance_svc::Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("attendance-svc: {err}");
            return ExitCode::from(2);
        }
    };
    let code = match clokio_attendance_svc::run(config, clokio_runtime::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "attendance-svc failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    clokio_runtime::service::main("reporting-svc", clokio_reporting_svc::run).await
}

use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    clokio_runtime::service::main(
        "gateway",
        |config: clokio_gateway::Config, shutdown| async move {
            let listener =
                clokio_runtime::service::listen("CLOKIO_GATEWAY_ADDR", config.addr).await?;
            clokio_gateway::run(config, listener, shutdown).await
        },
    )
    .await
}

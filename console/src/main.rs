use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    clokio_runtime::service::main(
        "console",
        |config: clokio_console::Config, shutdown| async move {
            let listener =
                clokio_runtime::service::listen("CLOKIO_CONSOLE_ADDR", config.addr).await?;
            clokio_console::run(config, listener, shutdown).await
        },
    )
    .await
}

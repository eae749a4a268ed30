#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> std::process::ExitCode {
    botfleet::cli::run().await
}

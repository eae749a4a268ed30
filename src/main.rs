#![forbid(unsafe_code)]

/// glibc's allocator showed as a sixth of the service's CPU under load (perf, pipeline bench);
/// mimalloc's thread-local free lists cost a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    botfleet::cli::run().await
}

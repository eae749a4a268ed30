//! The real `botfleet` binary as a new user runs it: a clean environment (only PATH, and the
//! PostgreSQL settings the test run itself was given), a data folder of its own, a port the
//! kernel picks. Its standard error is collected, so tests read what a person would.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use crate::helpers::eventually;

/// How long a start, a stop or a command may take on a loaded two-core machine.
pub const SLOW: Duration = Duration::from_secs(120);

/// A data folder in the temporary folder, deleted when dropped.
pub struct DataFolder(pub PathBuf);

impl DataFolder {
    pub fn new() -> Self {
        Self(std::env::temp_dir().join(format!("botfleet-it-{}", uuid::Uuid::new_v4().simple())))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `botfleet` command on `data`, with `env` added to a clean environment.
pub fn command(data: &DataFolder, env: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_botfleet"));
    command
        .env_clear()
        .env("BOTFLEET_DATA_DIR", data.path())
        .kill_on_drop(true);
    for inherited in ["PATH", "POSTGRES_BIN_DIR", "POSTGRES_RUN_AS"] {
        if let Some(value) = std::env::var_os(inherited) {
            command.env(inherited, value);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Runs a command to its end; standard input is closed.
pub async fn run(data: &DataFolder, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let run = command(data, env).args(args).stdin(Stdio::null()).output();
    tokio::time::timeout(SLOW, run)
        .await
        .unwrap_or_else(|_| panic!("botfleet {args:?} did not finish in time"))
        .expect("run botfleet")
}

/// A running `botfleet` (no subcommand: serving is the default).
pub struct Served {
    child: tokio::process::Child,
    pub base: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Starts `botfleet` on `data` and waits until it listens.
    pub async fn start(data: &DataFolder, env: &[(&str, &str)]) -> Self {
        let mut all = vec![("BIND_ADDR", "127.0.0.1:0")];
        all.extend_from_slice(env);
        let mut child = command(data, &all)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start botfleet");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        let mut served = Self {
            child,
            base: String::new(),
            stderr,
        };
        let mut exited = None;
        eventually(SLOW, "botfleet listens", || {
            let listening = served.line_containing("botfleet is listening");
            exited = served.child.try_wait().ok().flatten();
            std::future::ready(listening.is_some() || exited.is_some())
        })
        .await;
        let line = served
            .line_containing("botfleet is listening")
            .unwrap_or_else(|| panic!("botfleet exited ({exited:?}):\n{}", served.stderr()));
        let addr = line.split("addr=").nth(1).expect("the address").trim();
        served.base = format!("http://{addr}");
        served
    }

    /// Everything written to standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn line_containing(&self, text: &str) -> Option<String> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(text))
            .cloned()
    }

    /// The one-time set-up link's token, when the start printed one.
    pub fn setup_token(&self) -> Option<String> {
        self.line_containing("/setup?token=")
            .and_then(|l| l.split("token=").nth(1).map(|t| t.trim().to_owned()))
    }

    /// SIGTERM, as systemd or Ctrl-C would; returns how it ended and what it wrote.
    pub async fn stop(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().expect("running") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        let status = tokio::time::timeout(SLOW, self.child.wait())
            .await
            .expect("botfleet stops after SIGTERM")
            .expect("wait");
        // The reader may still hold the last lines.
        eventually(Duration::from_secs(5), "standard error is read", || {
            std::future::ready(Arc::strong_count(&self.stderr) == 1)
        })
        .await;
        (status, self.stderr())
    }
}

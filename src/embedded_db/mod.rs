//! A private PostgreSQL cluster, started and stopped with Botfleet: the database when
//! `DATABASE_URL` is not set, and the test suite's when no server is reachable.
//!
//! It is a real PostgreSQL (the machine's installed server programs, see [`binaries`]),
//! initialised once in its own folder and listening only on a Unix socket in that folder,
//! which only its account (and root) may open: no port is taken, and no system cluster is
//! touched. Its one role, `botfleet`, is trusted on that socket.
//!
//! Stopping does not depend on Botfleet ending well: a watchdog shell, started beside the
//! server, reads a pipe from this process and stops the cluster when the pipe closes, which
//! happens however this process ends (a normal stop, a panic, SIGKILL).

mod account;
pub mod binaries;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

pub use account::Account;
pub use binaries::Binaries;

/// The cluster's superuser, and the only role Botfleet uses in it.
pub const SUPERUSER: &str = "botfleet";

/// The port number in the socket's name (`.s.PGSQL.5432`); no TCP port is opened.
pub const PORT: u16 = 5432;

/// The longest socket path the kernel takes (sun_path is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedDbError {
    #[error(
        "the embedded database needs PostgreSQL's server programs (initdb, pg_ctl, postgres) and \
         found none: install them (Debian/Ubuntu: `apt install postgresql`; Fedora: `dnf install \
         postgresql-server`; macOS: `brew install postgresql@17`), set POSTGRES_BIN_DIR to their \
         folder, or set DATABASE_URL to use a PostgreSQL server you run"
    )]
    NoBinaries,
    #[error("POSTGRES_BIN_DIR {dir} does not hold PostgreSQL's initdb, pg_ctl and postgres")]
    BinDirIncomplete { dir: PathBuf },
    #[error(
        "the embedded database was made by PostgreSQL {cluster}, whose server programs are not \
         installed (found: {found}): install PostgreSQL {cluster}'s server or point \
         POSTGRES_BIN_DIR at it (README, Upgrades, tells how to move to a newer PostgreSQL)"
    )]
    VersionMismatch { cluster: u32, found: String },
    #[error(
        "POSTGRES_RUN_AS: PostgreSQL refuses to run as root, and {name} is root; name an \
         unprivileged account"
    )]
    RunAsRoot { name: String },
    #[error(
        "POSTGRES_RUN_AS: PostgreSQL refuses to run as root, so started as root botfleet runs it \
         as an unprivileged account, and none of {names} exists; create one or name another"
    )]
    NoAccount { names: String },
    #[error(
        "BOTFLEET_DATA_DIR: the account {account}, which runs the embedded database (PostgreSQL \
         refuses root), cannot pass through {blocked}; use a data folder it can reach (e.g. \
         /var/lib/botfleet) or let it pass (chmod o+x {blocked})"
    )]
    Unreachable { account: String, blocked: PathBuf },
    #[error("{path} is not empty and holds no PostgreSQL cluster; move it away")]
    NotACluster { path: PathBuf },
    #[error("the embedded database: {what} failed: {detail}")]
    Program { what: &'static str, detail: String },
    #[error("the embedded database: {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where a cluster lives and how it runs.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// The cluster's files (PGDATA).
    pub cluster_dir: PathBuf,
    /// POSTGRES_BIN_DIR: where initdb, pg_ctl and postgres are; searched for when unset.
    pub bin_dir: Option<PathBuf>,
    /// POSTGRES_RUN_AS: the account the server runs as when root starts Botfleet.
    pub run_as: Option<String>,
    /// Sync to disk. Only a throwaway cluster (the tests') goes without: a crash may lose it.
    pub durable: bool,
    /// Delete the cluster's files once it has stopped.
    pub throwaway: bool,
}

impl ClusterSettings {
    /// The folder of the server's socket: the cluster's own, unless its path is too long for
    /// a socket; then a folder in /tmp named after it (so other commands find it too).
    pub fn socket_dir(&self) -> PathBuf {
        let own = &self.cluster_dir;
        if own.as_os_str().len() + format!("/.s.PGSQL.{PORT}").len() <= MAX_SOCKET_PATH {
            return own.clone();
        }
        use sha2::Digest;
        let digest = sha2::Sha256::digest(own.as_os_str().as_encoded_bytes());
        let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        PathBuf::from(format!("/tmp/botfleet-{name}"))
    }

    /// Whether a server is listening on this cluster's socket (another process runs it).
    pub fn is_listening(&self) -> bool {
        self.socket_dir()
            .join(format!(".s.PGSQL.{PORT}"))
            .try_exists()
            .unwrap_or(false)
    }

    /// The URL of `database` in this cluster, as sqlx and libpq (pg_dump) both read it.
    pub fn url(&self, database: &str) -> String {
        // Percent-encoded byte by byte: libpq decodes only `%XX` (a `+` would stay a plus).
        let socket: String = self
            .socket_dir()
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .map(|&b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("postgres://{SUPERUSER}@localhost:{PORT}/{database}?host={socket}")
    }
}

/// A running cluster. Stop it with [`Cluster::stop`]; if it is dropped instead, or this
/// process dies, the watchdog stops it.
pub struct Cluster {
    settings: ClusterSettings,
    binaries: Binaries,
    account: Account,
    watchdog: Option<Child>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("cluster_dir", &self.settings.cluster_dir)
            .field("account", &self.account.name)
            .finish()
    }
}

impl Cluster {
    /// Initialises the cluster on first use, then starts it and waits until it accepts
    /// connections. The caller makes sure no other process runs it (the data folder's lock).
    pub async fn start(settings: ClusterSettings) -> Result<Self, EmbeddedDbError> {
        // The programs below are quick but blocking; keep them off the async runtime.
        tokio::task::spawn_blocking(move || Self::start_blocking(settings))
            .await
            .expect("starting the embedded database does not panic")
    }

    fn start_blocking(settings: ClusterSettings) -> Result<Self, EmbeddedDbError> {
        let dir = &settings.cluster_dir;
        let account = Account::choose(settings.run_as.as_deref(), dir)?;
        let existing_major = read_pg_version(dir)?;
        let binaries = Binaries::find(settings.bin_dir.as_deref(), existing_major)?;
        prepare_dir(dir, &account)?;
        if let Some(blocked) = account.blocked_on_the_way_to(dir) {
            return Err(EmbeddedDbError::Unreachable {
                account: account.name.clone(),
                blocked,
            });
        }
        if existing_major.is_none() {
            initdb(&settings, &binaries, &account)?;
            tracing::info!(
                cluster = %dir.display(),
                postgres = binaries.major,
                account = %account.name,
                "created the embedded database"
            );
        }
        let socket_dir = settings.socket_dir();
        if socket_dir != *dir {
            prepare_dir(&socket_dir, &account)?;
        }
        write_settings(&settings, &socket_dir, &account)?;

        let mut cluster = Self {
            settings,
            binaries,
            account,
            watchdog: None,
        };
        // A server left by a process that died with its watchdog: ours (the caller holds the
        // folder), but started with settings of its time. Stop it and start afresh.
        if cluster.pg_ctl_status() {
            cluster.pg_ctl(
                &["stop", "-m", "fast", "-w", "-s"],
                "stopping a leftover server",
            )?;
        }
        cluster.start_server()?;
        Ok(cluster)
    }

    fn start_server(&mut self) -> Result<(), EmbeddedDbError> {
        let dir = self.settings.cluster_dir.clone();
        let log = dir.join("startup.log");
        let started = self.pg_ctl(
            &[
                "start",
                "-w",
                "-t",
                "120",
                "-s",
                "-l",
                &log.to_string_lossy(),
            ],
            "starting the server",
        );
        if let Err(EmbeddedDbError::Program { what, detail }) = started {
            let tail = std::fs::read_to_string(&log)
                .map(|text| last_lines(&text, 5))
                .unwrap_or_default();
            return Err(EmbeddedDbError::Program {
                what,
                detail: format!("{detail} {tail}").trim().to_owned(),
            });
        }
        started?;
        self.watchdog = Some(self.spawn_watchdog()?);
        Ok(())
    }

    /// A shell, run as the cluster's account, that waits for its standard input to close and
    /// then stops the cluster (and, for a throwaway one, deletes it). Signals to the terminal's
    /// process group (Ctrl-C) are ignored, so it outlives this process to do its job.
    fn spawn_watchdog(&self) -> Result<Child, EmbeddedDbError> {
        // `read` is the shell's own: the wait works without a PATH (an `env -i` start).
        let script = r#"trap '' INT TERM HUP QUIT
while read -r _; do :; done
"$0" stop -D "$1" -m fast -w -s >/dev/null 2>&1
if [ "$2" = throwaway ]; then PATH="${PATH:-/usr/bin:/bin}" rm -rf "$1"; fi"#;
        let dir = &self.settings.cluster_dir;
        self.account
            .command(Path::new("/bin/sh"), dir)
            .arg("-c")
            .arg(script)
            .arg(self.binaries.program("pg_ctl"))
            .arg(dir)
            .arg(if self.settings.throwaway {
                "throwaway"
            } else {
                "keep"
            })
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| EmbeddedDbError::Io {
                what: "cannot start the watchdog in",
                path: dir.clone(),
                source,
            })
    }

    /// The URL of `database` in this cluster.
    pub fn url(&self, database: &str) -> String {
        self.settings.url(database)
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// The PostgreSQL programs this cluster runs with (pg_dump and pg_restore for backups).
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// Stops the server and waits until it has shut down.
    pub async fn stop(mut self) -> Result<(), EmbeddedDbError> {
        let Some(watchdog) = self.watchdog.take() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || Self::stop_blocking(watchdog))
            .await
            .expect("stopping the embedded database does not panic")
    }

    fn stop_blocking(mut watchdog: Child) -> Result<(), EmbeddedDbError> {
        // Closing its input is the watchdog's signal; it exits once the server has stopped.
        drop(watchdog.stdin.take());
        watchdog
            .wait()
            .map(|_| ())
            .map_err(|source| EmbeddedDbError::Io {
                what: "waiting for the server to stop in",
                path: PathBuf::new(),
                source,
            })
    }

    /// Moves the cluster's transaction counter past `epoch` (the high 32 bits of a
    /// transaction id): stops the server, runs `pg_resetwal -e`, starts it again. For a
    /// restored backup whose events carry transaction ids ahead of this cluster's.
    pub async fn advance_epoch(mut self, epoch: u32) -> Result<Self, EmbeddedDbError> {
        let watchdog = self.watchdog.take();
        tokio::task::spawn_blocking(move || {
            if let Some(watchdog) = watchdog {
                // Throwaway clusters are not restored into; keep the files either way.
                Self::stop_blocking(watchdog)?;
            }
            let resetwal = self.binaries.program("pg_resetwal");
            let dir = self.settings.cluster_dir.clone();
            run(
                self.account
                    .command(&resetwal, &dir)
                    .arg("-e")
                    .arg(epoch.to_string())
                    .arg("-D")
                    .arg(&dir),
                "pg_resetwal",
            )?;
            self.start_server()?;
            Ok(self)
        })
        .await
        .expect("advancing the transaction counter does not panic")
    }

    fn pg_ctl(&self, args: &[&str], what: &'static str) -> Result<(), EmbeddedDbError> {
        let dir = &self.settings.cluster_dir;
        run(
            self.account
                .command(&self.binaries.program("pg_ctl"), dir)
                .args(args)
                .arg("-D")
                .arg(dir),
            what,
        )
    }

    /// Whether a server runs on this cluster's files (`pg_ctl status` exits 0).
    fn pg_ctl_status(&self) -> bool {
        let dir = &self.settings.cluster_dir;
        self.account
            .command(&self.binaries.program("pg_ctl"), dir)
            .arg("status")
            .arg("-D")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// The major version of the cluster in `dir`, or `None` when there is none yet.
fn read_pg_version(dir: &Path) -> Result<Option<u32>, EmbeddedDbError> {
    match std::fs::read_to_string(dir.join("PG_VERSION")) {
        Ok(text) => Ok(text.trim().parse().ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let empty = std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none());
            if empty {
                Ok(None)
            } else {
                Err(EmbeddedDbError::NotACluster {
                    path: dir.to_owned(),
                })
            }
        }
        // Root reading a folder owned by the account is never refused; anyone else owns it.
        Err(source) => Err(EmbeddedDbError::Io {
            what: "cannot read",
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Makes `dir` (0700, the account's) when missing; an existing one is given to the account.
fn prepare_dir(dir: &Path, account: &Account) -> Result<(), EmbeddedDbError> {
    let io = |what| {
        move |source| EmbeddedDbError::Io {
            what,
            path: dir.to_owned(),
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io("cannot create"))?;
    account.take(dir).map_err(io("cannot hand over"))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io("cannot restrict"))
}

fn initdb(
    settings: &ClusterSettings,
    binaries: &Binaries,
    account: &Account,
) -> Result<(), EmbeddedDbError> {
    let dir = &settings.cluster_dir;
    let mut command = account.command(&binaries.program("initdb"), dir);
    command
        .arg("-D")
        .arg(dir)
        .args(["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8"])
        // Text compares byte by byte, the same on every machine a backup may move to.
        .arg("--no-locale");
    if !settings.durable {
        command.arg("--no-sync");
    }
    run(&mut command, "initdb")?;
    // Botfleet's own settings live in a file it rewrites at each start; postgresql.conf stays
    // the operator's.
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("postgresql.conf"))
        .map_err(|source| EmbeddedDbError::Io {
            what: "cannot open",
            path: dir.join("postgresql.conf"),
            source,
        })?;
    writeln!(
        conf,
        "\n# Botfleet's settings for its embedded database, rewritten at each start.\ninclude_if_exists = 'botfleet.conf'"
    )
    .map_err(|source| EmbeddedDbError::Io {
        what: "cannot write",
        path: dir.join("postgresql.conf"),
        source,
    })
}

/// `botfleet.conf`: only the socket listens, only the account may open it, and the server
/// keeps its own rotating log in `log/`.
fn write_settings(
    settings: &ClusterSettings,
    socket_dir: &Path,
    account: &Account,
) -> Result<(), EmbeddedDbError> {
    let quoted = |path: &Path| format!("'{}'", path.to_string_lossy().replace('\'', "''"));
    let mut conf = format!(
        "# Written by botfleet at each start: edit postgresql.conf for settings of your own.\n\
         listen_addresses = ''\n\
         port = {PORT}\n\
         unix_socket_directories = {}\n\
         unix_socket_permissions = 0700\n\
         logging_collector = on\n\
         log_directory = 'log'\n\
         log_filename = 'postgresql-%a.log'\n\
         log_truncate_on_rotation = on\n\
         log_rotation_age = 1d\n",
        quoted(socket_dir)
    );
    if !settings.durable {
        conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
    }
    let path = settings.cluster_dir.join("botfleet.conf");
    std::fs::write(&path, conf)
        .and_then(|()| account.take(&path))
        .map_err(|source| EmbeddedDbError::Io {
            what: "cannot write",
            path,
            source,
        })
}

/// Runs a program to its end; a failure carries the last lines it wrote.
fn run(command: &mut std::process::Command, what: &'static str) -> Result<(), EmbeddedDbError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| EmbeddedDbError::Program {
            what,
            detail: e.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Err(EmbeddedDbError::Program {
        what,
        detail: last_lines(&text, 3),
    })
}

/// The last `n` non-empty lines of `text`, on one line.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

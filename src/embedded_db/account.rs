//! The account the embedded PostgreSQL runs as.
//!
//! PostgreSQL refuses to run as root (a server bug must not own the machine). Started by an
//! ordinary user, Botfleet runs the cluster as that user. Started by root (a container, CI, a
//! system service without `User=`), it runs the cluster's programs as `POSTGRES_RUN_AS`:
//! by default the owner of an existing cluster (root running a command on a service's data
//! folder must not take the cluster from the service's user), else the `postgres` account that
//! PostgreSQL's packages create, else `nobody`. The cluster's folder is given to that account,
//! and every folder above it must let it pass.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::EmbeddedDbError;

/// Who runs the cluster's programs.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    /// Set when the programs must run as another user than this process.
    switch_to: Option<(u32, u32)>,
    uid: u32,
    gid: u32,
}

/// The accounts tried, in order, when root starts Botfleet without `POSTGRES_RUN_AS`.
const DEFAULT_ACCOUNTS: [&str; 2] = ["postgres", "nobody"];

impl Account {
    /// This process's own user, or (as root) `run_as`, the existing cluster's owner, or the
    /// first default account.
    pub fn choose(run_as: Option<&str>, cluster_dir: &Path) -> Result<Self, EmbeddedDbError> {
        let euid = nix::unistd::Uid::effective();
        if !euid.is_root() {
            let name = nix::unistd::User::from_uid(euid)
                .ok()
                .flatten()
                .map_or_else(|| euid.to_string(), |u| u.name);
            return Ok(Self {
                name,
                switch_to: None,
                uid: euid.as_raw(),
                gid: nix::unistd::Gid::effective().as_raw(),
            });
        }
        let owner = std::fs::metadata(cluster_dir.join("PG_VERSION"))
            .ok()
            .map(|m| m.uid())
            .filter(|uid| *uid != 0)
            .and_then(|uid| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
            })
            .map(|user| user.name);
        let names: Vec<String> = match (run_as.filter(|n| !n.is_empty()), owner) {
            (Some(name), _) => vec![name.to_owned()],
            (None, Some(owner)) => vec![owner],
            (None, None) => DEFAULT_ACCOUNTS.iter().map(|n| (*n).to_owned()).collect(),
        };
        for name in &names {
            if let Ok(Some(user)) = nix::unistd::User::from_name(name) {
                if user.uid.is_root() {
                    return Err(EmbeddedDbError::RunAsRoot { name: name.clone() });
                }
                return Ok(Self {
                    name: user.name,
                    switch_to: Some((user.uid.as_raw(), user.gid.as_raw())),
                    uid: user.uid.as_raw(),
                    gid: user.gid.as_raw(),
                });
            }
        }
        Err(EmbeddedDbError::NoAccount {
            names: names.join(", "),
        })
    }

    /// A command for one of PostgreSQL's programs, run as this account, with an environment
    /// that cannot point it elsewhere (PGDATA, PGHOST…).
    pub fn command(&self, program: &Path, working_dir: &Path) -> Command {
        let mut command = Command::new(program);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                command.env_remove(key);
            }
        }
        command.current_dir(working_dir);
        if let Some((uid, gid)) = self.switch_to {
            // std drops root's supplementary groups when it changes the user.
            std::os::unix::process::CommandExt::uid(&mut command, uid);
            std::os::unix::process::CommandExt::gid(&mut command, gid);
        }
        command
    }

    /// Gives `path` to this account (when it is another user than this process).
    pub fn take(&self, path: &Path) -> std::io::Result<()> {
        match self.switch_to {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
            None => Ok(()),
        }
    }

    /// The first folder on the way to `path` (inclusive) this account may not pass through.
    pub fn blocked_on_the_way_to(&self, path: &Path) -> Option<std::path::PathBuf> {
        self.switch_to?;
        path.ancestors()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find(|dir| {
                let Ok(meta) = std::fs::metadata(dir) else {
                    return false;
                };
                let mode = meta.mode();
                let may_pass = if meta.uid() == self.uid {
                    mode & 0o100 != 0
                } else if meta.gid() == self.gid {
                    mode & 0o010 != 0
                } else {
                    mode & 0o001 != 0
                };
                !may_pass
            })
            .map(Path::to_owned)
    }
}

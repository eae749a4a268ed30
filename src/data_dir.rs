//! Botfleet's data folder (`BOTFLEET_DATA_DIR`): the generated keys and the embedded
//! database live there, so that a fresh machine needs no set-up and a backup knows what to
//! copy.
//!
//! ```text
//! $BOTFLEET_DATA_DIR/
//!   botfleet.lock          held by the process that runs the embedded database
//!   keys/                  0700: generated keys, each file 0600
//!   postgres/              the embedded PostgreSQL cluster (and its socket)
//! ```
//!
//! The folder is made on first use only: a service with `DATABASE_URL` and both keys in the
//! environment never touches it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The setting that names the folder, for error messages.
pub const SETTING: &str = "BOTFLEET_DATA_DIR";

/// Where everything Botfleet keeps on this machine lives.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{SETTING} {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    /// Another process holds the lock: the embedded database serves one process.
    #[error(
        "another botfleet process{} is using the data folder {path} ({SETTING}): its embedded \
         database serves one process at a time; stop that one first, or give several processes \
         one shared PostgreSQL with DATABASE_URL",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Busy { path: PathBuf, pid: Option<u32> },
}

impl DataDir {
    /// The folder `setting` names, or the default: `/var/lib/botfleet` for root (a system
    /// service), else `$XDG_DATA_HOME/botfleet` or `~/.local/share/botfleet`, else
    /// `./botfleet-data`.
    pub fn resolve(setting: Option<&Path>) -> Self {
        let path = match setting.filter(|p| !p.as_os_str().is_empty()) {
            Some(path) => path.to_owned(),
            None => default_path(),
        };
        // Relative paths are anchored now, so that a later change of directory (the embedded
        // database's server runs in its own) does not move the folder.
        let path = std::path::absolute(&path).unwrap_or(path);
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the folder when it is missing. `traversable`: others may pass through it (not
    /// list it), which the embedded database's own account needs when root starts Botfleet.
    pub fn ensure(&self, traversable: bool) -> Result<(), DataDirError> {
        make_dir(&self.path, if traversable { 0o711 } else { 0o700 })
    }

    /// A folder inside, made when missing with `mode`.
    pub fn subdir(&self, name: &str, mode: u32) -> Result<PathBuf, DataDirError> {
        let path = self.path.join(name);
        make_dir(&path, mode)?;
        Ok(path)
    }

    /// Takes the folder for this process: refused while another process holds it. The lock is
    /// the kernel's (flock), so it goes with the process however that ends.
    pub fn lock(&self) -> Result<DataDirLock, DataDirError> {
        let path = self.path.join("botfleet.lock");
        let io = |what| {
            let path = path.clone();
            move |source| DataDirError::Io { path, what, source }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io("cannot open the lock file"))?;
        give_to_folder_owner(&path).map_err(io("cannot hand over the lock file"))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                // The holder's pid, for the message another process shows.
                lock.set_len(0).map_err(io("cannot write the lock file"))?;
                lock.rewind().map_err(io("cannot write the lock file"))?;
                write!(lock, "{}", std::process::id()).map_err(io("cannot write the lock file"))?;
                Ok(DataDirLock { _lock: lock })
            }
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                Err(DataDirError::Busy {
                    path: self.path.clone(),
                    pid: pid.trim().parse().ok(),
                })
            }
            Err((_, errno)) => Err(io("cannot lock the lock file")(errno.into())),
        }
    }
}

/// Held while this process owns the data folder; released when dropped or at exit.
pub struct DataDirLock {
    _lock: Flock<File>,
}

impl std::fmt::Debug for DataDirLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataDirLock")
    }
}

fn default_path() -> PathBuf {
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/var/lib/botfleet");
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(data_home) => PathBuf::from(data_home).join("botfleet"),
        None => match home {
            Some(home) => PathBuf::from(home).join(".local/share/botfleet"),
            None => PathBuf::from("botfleet-data"),
        },
    }
}

fn make_dir(path: &Path, mode: u32) -> Result<(), DataDirError> {
    if path.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .and_then(|()| {
            // The umask may have taken bits away from a mode that asked for them.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        })
        .and_then(|()| give_to_folder_owner(path))
        .map_err(|source| DataDirError::Io {
            path: path.to_owned(),
            what: "cannot create the folder",
            source,
        })
}

/// Writes a new file that only its owner may read or write; refuses to replace one.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    give_to_folder_owner(path)
}

/// Made by root in another user's folder (an operator's command on a service's data folder),
/// a file or folder is given to that user: the service must still be able to use it.
fn give_to_folder_owner(path: &Path) -> std::io::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(());
    }
    use std::os::unix::fs::MetadataExt;
    let folder = std::fs::metadata(path.parent().unwrap_or(Path::new(".")))?;
    if folder.uid() != 0 {
        std::os::unix::fs::chown(path, Some(folder.uid()), Some(folder.gid()))?;
    }
    Ok(())
}

/// Replaces a private file in one step (a new file beside it, then a rename), so that a
/// crash leaves the old contents or the new ones, never half of either.
pub fn replace_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut staged = path.as_os_str().to_owned();
    staged.push(".new");
    let staged = PathBuf::from(staged);
    let _ = std::fs::remove_file(&staged);
    write_private(&staged, contents)?;
    std::fs::rename(&staged, path)
}

/// Whether others than the owner may read `path`.
pub fn readable_by_others(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> DataDir {
        let path = std::env::temp_dir().join(format!("botfleet-dd-{}", uuid::Uuid::new_v4()));
        DataDir::resolve(Some(&path))
    }

    #[test]
    fn a_second_lock_on_the_folder_is_refused_and_names_the_holder() {
        let dir = scratch();
        dir.ensure(false).unwrap();
        let held = dir.lock().unwrap();
        let refused = dir.lock().unwrap_err();
        let line = refused.to_string();
        assert!(
            line.contains(&format!("(pid {})", std::process::id())),
            "{line}"
        );
        assert!(line.contains("BOTFLEET_DATA_DIR"), "{line}");
        drop(held);
        assert!(dir.lock().is_ok(), "free again once released");
        std::fs::remove_dir_all(dir.path()).unwrap();
    }

    #[test]
    fn private_files_are_the_owners_alone_and_never_overwritten() {
        let dir = scratch();
        dir.ensure(false).unwrap();
        let file = dir.path().join("secret");
        write_private(&file, "one").unwrap();
        assert!(!readable_by_others(&file));
        assert!(write_private(&file, "two").is_err());
        replace_private(&file, "three").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "three");
        assert!(!readable_by_others(&file));
        std::fs::remove_dir_all(dir.path()).unwrap();
    }
}

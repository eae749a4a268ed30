//! Finding PostgreSQL's server programs (initdb, pg_ctl, postgres) on this machine.
//!
//! Nothing is downloaded: the programs of a packaged PostgreSQL are used where the packages
//! put them. The search, first match wins: `POSTGRES_BIN_DIR`; `pg_config --bindir`; `initdb`
//! on the `PATH` (Fedora, Arch, Homebrew); then the packagers' own folders, newest version
//! first (`/usr/lib/postgresql/*/bin` on Debian and Ubuntu, `/usr/pgsql-*/bin` on RHEL with
//! PGDG, Homebrew's `postgresql@*`, `/usr/local/pgsql/bin` from source).

use std::path::{Path, PathBuf};

use super::EmbeddedDbError;

/// The programs the embedded database starts and stops itself with.
const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// A folder with PostgreSQL's server programs, and their major version.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
    pub major: u32,
}

impl Binaries {
    /// The programs in `setting` (POSTGRES_BIN_DIR) when given, else the first folder found.
    /// `major`: the version an existing cluster was made with; only that one can run it.
    pub fn find(setting: Option<&Path>, major: Option<u32>) -> Result<Self, EmbeddedDbError> {
        if let Some(dir) = setting.filter(|d| !d.as_os_str().is_empty()) {
            let found = Self::in_dir(dir).ok_or_else(|| EmbeddedDbError::BinDirIncomplete {
                dir: dir.to_owned(),
            })?;
            return match major {
                Some(wanted) if wanted != found.major => Err(EmbeddedDbError::VersionMismatch {
                    cluster: wanted,
                    found: format!("{} in POSTGRES_BIN_DIR", found.major),
                }),
                _ => Ok(found),
            };
        }
        let candidates: Vec<Self> = candidate_dirs()
            .iter()
            .filter_map(|dir| Self::in_dir(dir))
            .collect();
        match major {
            None => candidates
                .into_iter()
                .next()
                .ok_or(EmbeddedDbError::NoBinaries),
            Some(wanted) => {
                let versions: Vec<String> =
                    candidates.iter().map(|b| b.major.to_string()).collect();
                candidates
                    .into_iter()
                    .find(|b| b.major == wanted)
                    .ok_or_else(|| EmbeddedDbError::VersionMismatch {
                        cluster: wanted,
                        found: if versions.is_empty() {
                            "none".to_owned()
                        } else {
                            versions.join(", ")
                        },
                    })
            }
        }
    }

    /// The server programs in `dir`, if all are there and `pg_ctl` tells its version.
    fn in_dir(dir: &Path) -> Option<Self> {
        if !SERVER_PROGRAMS.iter().all(|p| dir.join(p).is_file()) {
            return None;
        }
        let output = std::process::Command::new(dir.join("pg_ctl"))
            .arg("--version")
            .output()
            .ok()?;
        let major = parse_major(&String::from_utf8_lossy(&output.stdout))?;
        Some(Self {
            dir: dir.to_owned(),
            major,
        })
    }

    /// The path of one of PostgreSQL's programs in this folder (`pg_dump`, `pg_resetwal`…).
    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// `pg_ctl (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)` → 15.
fn parse_major(version: &str) -> Option<u32> {
    let rest = version.split("(PostgreSQL)").nth(1)?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Folders that may hold the server programs, in the order they are tried.
fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(output) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
    {
        if output.status.success() {
            dirs.push(PathBuf::from(
                String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            ));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|d| d.join("initdb").is_file()));
    }
    for pattern_dir in [
        "/usr/lib/postgresql",
        "/usr",
        "/opt/homebrew/opt",
        "/usr/local/opt",
    ] {
        dirs.extend(versioned_dirs(Path::new(pattern_dir)));
    }
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs
}

/// `<parent>/<N>/bin`, `<parent>/pgsql-<N>/bin` and `<parent>/postgresql@<N>/bin`, newest first.
fn versioned_dirs(parent: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version = match parent.file_name().and_then(|n| n.to_str()) {
                Some("postgresql") => name.as_str(),
                Some("usr") => name.strip_prefix("pgsql-")?,
                _ => name.strip_prefix("postgresql@")?,
            };
            let major: u32 = version.split('.').next()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    found.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    found.into_iter().map(|(_, dir)| dir).collect()
}

#[cfg(test)]
mod tests {
    use super::parse_major;

    #[test]
    fn the_major_version_is_read_from_pg_ctl() {
        assert_eq!(
            parse_major("pg_ctl (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major("pg_ctl (PostgreSQL) 17.2\n"), Some(17));
        assert_eq!(parse_major("something else"), None);
    }
}

//! TOKEN_ENCRYPTION_KEY and COOKIE_SECRET: from the environment when set (it always wins),
//! else from a file in the data folder's `keys/`, generated on first start.
//!
//! A generated key is written once, readable only by its owner, and never printed; the start
//! says in one line where it is. Losing TOKEN_ENCRYPTION_KEY loses every bot token, so a backup
//! takes `keys/` with the database (README, Backups).

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::config::{DatabaseArgs, ServeArgs};
use crate::data_dir::{self, DataDir};

/// One key Botfleet keeps: its setting, its file, and how many random bytes a new one has.
pub struct KeySpec {
    pub setting: &'static str,
    pub file: &'static str,
    random_bytes: usize,
}

pub const TOKEN_ENCRYPTION_KEY: KeySpec = KeySpec {
    setting: "TOKEN_ENCRYPTION_KEY",
    file: "token-encryption.key",
    random_bytes: 32,
};

pub const COOKIE_SECRET: KeySpec = KeySpec {
    setting: "COOKIE_SECRET",
    file: "cookie-secret.key",
    random_bytes: 48,
};

/// Where a key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    Environment,
    File(PathBuf),
    /// Made by this start, and written to the file.
    Generated(PathBuf),
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Environment => f.write_str("the environment"),
            Self::File(path) | Self::Generated(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The folder the key files are in.
pub fn keys_dir(args: &DatabaseArgs) -> PathBuf {
    DataDir::resolve(args.data_dir.as_deref())
        .path()
        .join("keys")
}

/// The file `spec` is kept in.
pub fn key_file(args: &DatabaseArgs, spec: &KeySpec) -> PathBuf {
    keys_dir(args).join(spec.file)
}

/// Fills both keys of `args` that the environment left unset, from their files, generating
/// missing ones; says in one line which it generated. Returns where the token key came from.
pub fn fill_serve_keys(args: &mut ServeArgs) -> anyhow::Result<KeyOrigin> {
    let mut generated = Vec::new();
    let mut origins = Vec::new();
    for (spec, value) in [
        (&TOKEN_ENCRYPTION_KEY, &mut args.token_encryption_key),
        (&COOKIE_SECRET, &mut args.cookie_secret),
    ] {
        let (key, origin) = load_or_generate(&args.database, spec, value.take())?;
        *value = Some(key);
        if let KeyOrigin::Generated(path) = &origin {
            generated.push((spec.setting, path.clone()));
        }
        origins.push(origin);
    }
    if !generated.is_empty() {
        let names: Vec<&str> = generated.iter().map(|(name, _)| *name).collect();
        let folder = generated[0].1.parent().unwrap_or(Path::new("."));
        tracing::warn!(
            "generated {} into {} (files only their owner can read): back them up with the database; without TOKEN_ENCRYPTION_KEY the stored bot tokens cannot be opened",
            names.join(" and "),
            folder.display()
        );
    }
    Ok(origins.swap_remove(0))
}

/// `value` (from the environment) when set, else the key in its file, else a new one.
pub fn load_or_generate(
    args: &DatabaseArgs,
    spec: &KeySpec,
    value: Option<String>,
) -> anyhow::Result<(String, KeyOrigin)> {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        return Ok((value, KeyOrigin::Environment));
    }
    if let Some(found) = load(args, spec)? {
        return Ok(found);
    }
    let data_dir = DataDir::resolve(args.data_dir.as_deref());
    data_dir.ensure(nix::unistd::Uid::effective().is_root())?;
    let dir = data_dir.subdir("keys", 0o700)?;
    let path = dir.join(spec.file);
    let key = STANDARD.encode(random_bytes(spec.random_bytes));
    match data_dir::write_private(&path, &format!("{key}\n")) {
        Ok(()) => Ok((key, KeyOrigin::Generated(path))),
        // Another process made it first: use that one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load(args, spec)?
            .ok_or_else(|| anyhow::anyhow!("{} appeared and vanished", path.display())),
        Err(e) => Err(anyhow::anyhow!(
            "{}: cannot write {}: {e}",
            spec.setting,
            path.display()
        )),
    }
}

/// The key in `spec`'s file, if there is one.
pub fn load(args: &DatabaseArgs, spec: &KeySpec) -> anyhow::Result<Option<(String, KeyOrigin)>> {
    let path = key_file(args, spec);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            if data_dir::readable_by_others(&path) {
                tracing::warn!(file = %path.display(), "{} is readable by other users: chmod 600 it", spec.setting);
            }
            let key = text.trim().to_owned();
            if key.is_empty() {
                anyhow::bail!("{}: {} is empty", spec.setting, path.display());
            }
            Ok(Some((key, KeyOrigin::File(path))))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!(
            "{}: cannot read {}: {e}",
            spec.setting,
            path.display()
        )),
    }
}

/// A new TOKEN_ENCRYPTION_KEY, base64.
pub fn new_token_key() -> String {
    STANDARD.encode(random_bytes(TOKEN_ENCRYPTION_KEY.random_bytes))
}

fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// The file a rotation stages the new key in before the store switches to it.
pub fn staged_key_file(path: &Path) -> PathBuf {
    let mut staged = path.as_os_str().to_owned();
    staged.push(".next");
    PathBuf::from(staged)
}

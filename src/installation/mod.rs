//! Botfleet on this machine: which database it uses, the keys it keeps, and backups.
//!
//! - [`Database`]: `DATABASE_URL` when set, else the embedded PostgreSQL in the data folder,
//!   started for as long as the command needs it (see `embedded_db`).
//! - [`keys`]: TOKEN_ENCRYPTION_KEY and COOKIE_SECRET from the environment, else from files in
//!   the data folder, generated on first start.
//! - [`backup`]: `botfleet backup` and `botfleet restore`.

pub mod backup;
pub mod keys;

use sqlx::PgPool;

use crate::config::DatabaseArgs;
use crate::data_dir::{DataDir, DataDirError, DataDirLock};
use crate::db::DbError;
use crate::embedded_db::{Cluster, ClusterSettings};

/// The database's name in the embedded cluster.
pub const EMBEDDED_DATABASE: &str = "botfleet";

/// How errors name the embedded database as the source of a URL.
pub const EMBEDDED_ORIGIN: &str = "the embedded database";

/// What a command needs of the embedded database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `serve`: runs it, for as long as it serves; refused while another process does.
    Serve,
    /// Other commands: use the running service's, or start it for the command's duration.
    Command,
    /// `restore`: must have it to itself.
    Exclusive,
}

/// The database a command works on, and what keeps it running meanwhile.
pub struct Database {
    /// The URL for sqlx (and libpq: pg_dump and pg_restore read it too).
    pub url: String,
    /// Where the URL came from, for errors: `DATABASE_URL` or the embedded database.
    pub origin: String,
    embedded: Embedded,
}

enum Embedded {
    /// DATABASE_URL: a server someone else runs.
    No,
    /// Started by this process, which holds the data folder.
    Owned {
        cluster: Cluster,
        _lock: DataDirLock,
    },
    /// Run by another botfleet process (a `serve`) on the same data folder.
    Attached,
}

impl Database {
    pub async fn open(args: &DatabaseArgs, access: Access) -> anyhow::Result<Self> {
        if let Some(url) = args.database_url.as_deref().filter(|u| !u.is_empty()) {
            return Ok(Self {
                url: url.to_owned(),
                origin: crate::db::FROM_SETTING.to_owned(),
                embedded: Embedded::No,
            });
        }
        let data_dir = DataDir::resolve(args.data_dir.as_deref());
        let settings = cluster_settings(&data_dir, args);
        let root = nix::unistd::Uid::effective().is_root();
        // As root, the cluster's own account must be able to pass through the folder.
        data_dir.ensure(root)?;
        let lock = match data_dir.lock() {
            Ok(lock) => lock,
            Err(busy @ DataDirError::Busy { .. }) => {
                if access != Access::Command {
                    return Err(busy.into());
                }
                if !settings.is_listening() {
                    anyhow::bail!(
                        "{busy}; its embedded database is not listening yet: try again in a moment"
                    );
                }
                return Ok(Self {
                    url: settings.url(EMBEDDED_DATABASE),
                    origin: EMBEDDED_ORIGIN.to_owned(),
                    embedded: Embedded::Attached,
                });
            }
            Err(other) => return Err(other.into()),
        };
        let cluster = Cluster::start(settings).await?;
        tracing::debug!(folder = %data_dir.path().display(), "the embedded database is up");
        Ok(Self {
            url: cluster.url(EMBEDDED_DATABASE),
            origin: EMBEDDED_ORIGIN.to_owned(),
            embedded: Embedded::Owned {
                cluster,
                _lock: lock,
            },
        })
    }

    /// The `DatabaseArgs` a service (or a command) connects with: this database's URL.
    pub fn apply_to(&self, args: &mut DatabaseArgs) {
        args.database_url = Some(self.url.clone());
        args.origin = Some(self.origin.clone());
    }

    /// A pool on this database (created and migrated by the caller when it needs that).
    pub async fn pool(&self, max_connections: u32) -> Result<PgPool, DbError> {
        crate::db::connect_from(&self.url, &self.origin, max_connections).await
    }

    /// The embedded cluster, when this process runs it.
    pub fn cluster(&self) -> Option<&Cluster> {
        match &self.embedded {
            Embedded::Owned { cluster, .. } => Some(cluster),
            _ => None,
        }
    }

    pub fn is_embedded(&self) -> bool {
        !matches!(self.embedded, Embedded::No)
    }

    /// Stops the embedded database if this process started it, then lets the folder go.
    pub async fn close(self) -> anyhow::Result<()> {
        if let Embedded::Owned { cluster, _lock } = self.embedded {
            cluster.stop().await?;
            drop(_lock);
        }
        Ok(())
    }
}

/// The embedded cluster of a data folder.
pub fn cluster_settings(data_dir: &DataDir, args: &DatabaseArgs) -> ClusterSettings {
    ClusterSettings {
        cluster_dir: data_dir.path().join("postgres"),
        bin_dir: args.postgres_bin_dir.clone(),
        run_as: args.postgres_run_as.clone(),
        durable: true,
        throwaway: false,
    }
}

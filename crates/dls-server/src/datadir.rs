//! The data directory: created on first start with everything the service needs — the
//! database, a CA, a TLS server certificate, the admin token and the fingerprint key —
//! every file readable only by its owner.
//!
//! An existing directory is checked at every start: the directory and its private files
//! must belong to the user the service runs as (else the service refuses to start: that
//! other user could read or replace the keys), and permissions wider than 0700 (the
//! directory) and 0600 (the files) are tightened, with one WARN line each.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::ServerError;

/// File names inside the data directory.
pub(crate) mod names {
    pub(crate) const DATABASE: &str = "dls.sqlite";
    pub(crate) const CA_CERT: &str = "ca.crt";
    pub(crate) const CA_KEY: &str = "ca.key";
    pub(crate) const SERVER_CERT: &str = "server.crt";
    pub(crate) const SERVER_KEY: &str = "server.key";
    pub(crate) const ADMIN_TOKEN: &str = "admin-token";
    pub(crate) const ADMIN_URL: &str = "admin-url";
    pub(crate) const FINGERPRINT_KEY: &str = "fingerprint.key";
    pub(crate) const SECRETS_KEY: &str = "secrets.key";
    /// The deployment file store (a directory).
    pub(crate) const FILES: &str = "files";

    /// The files only the service may read: keys, the admin token, and the database
    /// (device secrets sealed with `secrets.key`, inventories, PINs) with SQLite's
    /// companion files.
    pub(crate) const PRIVATE: &[&str] = &[
        ADMIN_TOKEN,
        CA_KEY,
        SERVER_KEY,
        FINGERPRINT_KEY,
        SECRETS_KEY,
        DATABASE,
        "dls.sqlite-wal",
        "dls.sqlite-shm",
        "dls.sqlite-journal",
    ];
}

/// The data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Opens `path`, creating it (mode 0700) if needed; an existing one is secured (see
    /// the module's documentation).
    ///
    /// # Errors
    /// [`ServerError::Io`] if it cannot be created, or is not a directory;
    /// [`ServerError::Config`] if it or one of its private files belongs to another user.
    pub fn open(path: &Path) -> Result<Self, ServerError> {
        Self::open_as(path, rustix::process::geteuid().as_raw())
    }

    /// [`Self::open`] for a service running as the user `euid`.
    fn open_as(path: &Path, euid: u32) -> Result<Self, ServerError> {
        if !path.exists() {
            fs::create_dir_all(path).map_err(|e| ServerError::io(format!("creating {}", path.display()), e))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                .map_err(|e| ServerError::io(format!("securing {}", path.display()), e))?;
        }
        if !path.is_dir() {
            return Err(ServerError::Config(format!("{} is not a directory", path.display())));
        }
        secure(path, "the data directory", 0o700, euid)?;
        for name in names::PRIVATE {
            let file = path.join(name);
            if file.exists() {
                secure(&file, name, 0o600, euid)?;
            }
        }
        Ok(Self { path: path.to_path_buf() })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file inside the directory.
    #[must_use]
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Reads a file, or `None` if it does not exist.
    pub(crate) fn read(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, ServerError> {
        let p = self.file(name);
        match fs::read(&p) {
            Ok(b) => Ok(Some(Zeroizing::new(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ServerError::io(format!("reading {}", p.display()), e)),
        }
    }

    /// Writes a file readable only by its owner, atomically (temporary file, then rename).
    pub(crate) fn write_private(&self, name: &str, contents: &[u8]) -> Result<(), ServerError> {
        let p = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| ServerError::io(format!("creating {}", tmp.display()), e))?;
        f.write_all(contents)
            .and_then(|()| f.sync_all())
            .map_err(|e| ServerError::io(format!("writing {}", tmp.display()), e))?;
        fs::rename(&tmp, &p).map_err(|e| ServerError::io(format!("renaming to {}", p.display()), e))?;
        Ok(())
    }

    /// Creates an empty file readable only by its owner, unless it exists (the database
    /// before SQLite opens it: SQLite would create it 0644, and its companion files take
    /// the database's permissions).
    pub(crate) fn create_private(&self, name: &str) -> Result<(), ServerError> {
        let p = self.file(name);
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&p) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(ServerError::io(format!("creating {}", p.display()), e)),
        }
    }

    /// Reads a secret of `len` random bytes (hex in the file), creating it on first use.
    pub(crate) fn secret(&self, name: &str, len: usize) -> Result<Zeroizing<Vec<u8>>, ServerError> {
        if let Some(text) = self.read(name)? {
            let text = std::str::from_utf8(&text).map_err(|_| ServerError::Config(format!("{name} is not text")))?;
            let bytes = hex::decode(text.trim()).map_err(|_| ServerError::Config(format!("{name} is not hex")))?;
            if bytes.len() != len {
                return Err(ServerError::Config(format!("{name} must hold {len} bytes")));
            }
            return Ok(Zeroizing::new(bytes));
        }
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        getrandom::fill(&mut bytes).map_err(|e| ServerError::Config(format!("no random source: {e}")))?;
        let text = Zeroizing::new(hex::encode(&*bytes));
        self.write_private(name, text.as_bytes())?;
        Ok(bytes)
    }
}

/// Secures a private file outside the data directory (an enterprise CA's key) as the data
/// directory's own: it must belong to the service's user, and is tightened to 0600.
///
/// # Errors
/// [`ServerError::Config`] if it belongs to another user; [`ServerError::Io`] if it cannot
/// be read or tightened.
pub(crate) fn secure_private_file(path: &Path, what: &str) -> Result<(), ServerError> {
    secure(path, what, 0o600, rustix::process::geteuid().as_raw())
}

/// Refuses `path` if it belongs to another user than `euid`; tightens its permissions to
/// `mode` if group or others have any (one WARN line).
fn secure(path: &Path, what: &str, mode: u32, euid: u32) -> Result<(), ServerError> {
    let meta = fs::metadata(path).map_err(|e| ServerError::io(format!("reading {}", path.display()), e))?;
    if meta.uid() != euid {
        return Err(ServerError::Config(format!(
            "{what} {} belongs to the user with uid {}, but dls runs as uid {euid}: that user could read or \
             replace the service's keys; chown it to the service's user (or run dls as its owner)",
            path.display(),
            meta.uid()
        )));
    }
    let old = meta.permissions().mode() & 0o7777;
    if old & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| ServerError::io(format!("tightening the permissions of {}", path.display()), e))?;
        tracing::warn!(
            path = %path.display(),
            "{what} was accessible to other users (mode {old:04o}); tightened to {mode:04o}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::{DataDir, names};
    use crate::ServerError;

    fn mode(p: &std::path::Path) -> u32 {
        fs::metadata(p).expect("exists").permissions().mode() & 0o7777
    }

    fn set_mode(p: &std::path::Path, m: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(m)).expect("chmod");
    }

    #[test]
    fn a_loose_data_directory_of_ours_is_tightened() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("data");
        let dir = DataDir::open(&path).expect("created");
        assert_eq!(mode(&path), 0o700);
        dir.write_private(names::ADMIN_TOKEN, b"token").expect("token");
        dir.write_private(names::CA_KEY, b"key").expect("key");
        dir.write_private(names::CA_CERT, b"cert").expect("cert");
        dir.create_private(names::DATABASE).expect("database");
        assert_eq!(mode(&path.join(names::DATABASE)), 0o600);
        // What the attack found: a 0777 directory, a 0644 token and CA key.
        set_mode(&path, 0o777);
        set_mode(&path.join(names::ADMIN_TOKEN), 0o644);
        set_mode(&path.join(names::CA_KEY), 0o644);
        set_mode(&path.join(names::DATABASE), 0o666);
        set_mode(&path.join(names::CA_CERT), 0o644);
        DataDir::open(&path).expect("ours: tightened, not refused");
        assert_eq!(mode(&path), 0o700);
        for name in [names::ADMIN_TOKEN, names::CA_KEY, names::DATABASE] {
            assert_eq!(mode(&path.join(name)), 0o600, "{name}");
        }
        assert_eq!(mode(&path.join(names::CA_CERT)), 0o644, "a certificate is public");
        // Tight already: left as it is.
        set_mode(&path.join(names::CA_KEY), 0o400);
        DataDir::open(&path).expect("tight");
        assert_eq!(mode(&path.join(names::CA_KEY)), 0o400);
    }

    #[test]
    fn a_data_directory_or_key_of_another_user_is_refused() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("data");
        let dir = DataDir::open(&path).expect("created");
        dir.write_private(names::SERVER_KEY, b"key").expect("key");
        let owner = fs::metadata(&path).expect("dir").uid();
        // The same directory, for a service running as another user.
        let other = owner.wrapping_add(1);
        match DataDir::open_as(&path, other) {
            Err(ServerError::Config(m)) => {
                assert!(m.contains("the data directory") && m.contains(&format!("uid {other}")), "{m}");
                assert_eq!(m.lines().count(), 1, "one line: {m}");
            }
            other => panic!("refused: {other:?}"),
        }
        // A key file of another user in a directory of ours.
        let err = super::secure(&path.join(names::SERVER_KEY), names::SERVER_KEY, 0o600, other)
            .expect_err("another user's key");
        assert!(err.to_string().contains("server.key"), "{err}");
        set_mode(&path, 0o777);
        assert!(DataDir::open_as(&path, other).is_err());
        assert_eq!(mode(&path), 0o777, "nothing changed when refused");
    }
}

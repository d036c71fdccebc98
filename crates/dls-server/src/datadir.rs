//! The data directory: created on first start with everything the service needs — the
//! database, a CA, a TLS server certificate, the admin token and the fingerprint key —
//! every file readable only by its owner.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
}

/// The data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Opens `path`, creating it (mode 0700) if needed.
    ///
    /// # Errors
    /// [`ServerError::Io`] if it cannot be created, or is not a directory.
    pub fn open(path: &Path) -> Result<Self, ServerError> {
        if !path.exists() {
            fs::create_dir_all(path).map_err(|e| ServerError::io(format!("creating {}", path.display()), e))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                .map_err(|e| ServerError::io(format!("securing {}", path.display()), e))?;
        }
        if !path.is_dir() {
            return Err(ServerError::Config(format!("{} is not a directory", path.display())));
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

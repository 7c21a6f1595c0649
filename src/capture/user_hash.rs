//! Phone numbers become `user_hash`: HMAC-SHA256 keyed by a secret made on
//! first run and kept in the data dir with mode 0600. The raw number is never
//! stored or logged; with the key, support can still find a user's rows by
//! hashing the number they give.

use std::fmt;
use std::io::{ErrorKind as IoKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

/// File name of the key inside the data dir.
pub const KEY_FILE: &str = "user-hash.key";

/// Hashes phone numbers. `Debug` never shows the key.
#[derive(Clone)]
pub struct UserHasher {
    key: [u8; 32],
}

impl fmt::Debug for UserHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserHasher(****)")
    }
}

impl UserHasher {
    pub fn from_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The data dir's key, created (32 random bytes, hex, mode 0600) when
    /// absent. Several `serve` replicas sharing a PostgreSQL database must
    /// share this file so one user hashes the same everywhere.
    pub fn load_or_create(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(KEY_FILE);
        std::fs::create_dir_all(data_dir).map_err(|err| {
            Error::config(format!(
                "cannot create the data directory {}: {err}",
                data_dir.display()
            ))
        })?;
        let key: [u8; 32] = rand::random();
        // create_new: two processes starting at once cannot both write a key.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(hex::encode(key).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|err| key_error(&path, err))?;
                tracing::info!(path = %path.display(), "created the phone-number hashing key");
                Ok(Self { key })
            }
            Err(err) if err.kind() == IoKind::AlreadyExists => Self::read(&path),
            Err(err) => Err(key_error(&path, err)),
        }
    }

    fn read(path: &PathBuf) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|err| key_error(path, err))?;
        let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
        let Some(bytes) = bytes else {
            return Err(Error::config(format!(
                "{} is not a 64-hex-digit key; restore it from backup (deleting it changes every user hash)",
                path.display()
            )));
        };
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the hashing key was readable by others; setting mode 0600");
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        Ok(Self { key })
    }

    /// Hex HMAC of the number's digits, so `+91 98765-43210` and
    /// `919876543210` are one user. `None` when it has no digit.
    pub fn hash(&self, phone: &str) -> Option<String> {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return None;
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(digits.as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }

    /// Hex HMAC of a request's content, stored with its idempotency key to
    /// tell a retry from a key reused for something else. Keyed (and kept
    /// apart from phone hashes by a prefix) because the content may hold a
    /// phone number.
    pub fn fingerprint(&self, content: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"request\0");
        mac.update(content);
        hex::encode(mac.finalize().into_bytes())
    }
}

fn key_error(path: &Path, err: std::io::Error) -> Error {
    Error::config(format!(
        "cannot read or create the phone-number hashing key {}: {err}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_with_mode_0600_and_hashes_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = UserHasher::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = UserHasher::load_or_create(dir.path()).unwrap();
        let h = a.hash("+91 98765-43210").unwrap();
        assert_eq!(Some(h.clone()), b.hash("919876543210"));
        assert_eq!(h.len(), 64);
        assert!(!h.contains("9876543210"));
        assert_eq!(a.hash("n/a"), None);
        assert_ne!(UserHasher::from_key([1; 32]).hash("1"), a.hash("1"));
    }
}

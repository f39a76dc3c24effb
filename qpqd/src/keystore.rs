//! Where the key that encrypts the daemon's state comes from.
//!
//! A profile's state (`qpq-state.bin`, an SQLCipher database holding the
//! identity, MLS groups, history and outbox) is encrypted with a 32-byte key.
//! The key lives in the OS keyring (Secret Service, macOS Keychain, Windows
//! Credential Manager) under service `chat.quicproquo`, account = profile.
//! Where no keyring works (a headless box, a locked keyring), the key is
//! derived from a passphrase with Argon2id. The choice is recorded at creation
//! in `keystore.json` beside the state and never changes silently: a profile
//! made with the keyring that later finds no keyring is an error, not a fresh
//! state, and a wrong passphrase is an error too.
//!
//! **Two copies of the manifest.** For a passphrase profile the manifest
//! holds the Argon2id salt, without which the passphrase no longer opens the
//! state: losing that one small file would lose everything. So the same
//! manifest is written twice, to `keystore.json` and to
//! `qpq-state.keystore.json` (named after the state so that whoever copies
//! `qpq-state*` takes it along), each atomically (temporary file, fsync,
//! rename). At start both are read: when one is missing or unreadable, the
//! other is used and the lost one written again from it; when both are
//! readable but differ, nothing is guessed and the start fails naming both.
//! A profile made before the copy existed gets it at its next start. The
//! simpler alternatives do not work: the SQLCipher file's own plaintext
//! header has no room for our data (its first 16 bytes are SQLCipher's salt,
//! the rest is encrypted), and the salt cannot be derived from anything
//! stable without weakening it. When both copies are gone and the state
//! exists, no new manifest is made (a new salt would never open it, and
//! writing it would hide what happened): the start fails and says so, unless
//! the OS keyring still holds the profile's key.
//!
//! Both files, like the log, are created 0600 in the 0700 data directory.
//!
//! Keyring calls run on their own thread with a timeout: a locked Secret
//! Service can block a D-Bus call indefinitely.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use quicproquo_protocol::compat::HKDF_LABEL_STATE_KEY;
use quicproquo_protocol::paths::{make_file_private, STATE_FILE};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub const KEYRING_SERVICE: &str = "chat.quicproquo";
const KEYRING_TIMEOUT: Duration = Duration::from_secs(5);
const MANIFEST: &str = "keystore.json";
/// The second copy of [`MANIFEST`] (see the module docs).
const MANIFEST_COPY: &str = "qpq-state.keystore.json";

/// The key of the state database. Zeroized on drop; never printed.
pub struct StateKey(Zeroizing<[u8; 32]>);

impl StateKey {
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Stretches `ikm` (a random keyring secret or an Argon2id output) with
    /// HKDF under the historical state-key label, so the same input keys
    /// nothing else.
    fn derive(ikm: &[u8]) -> Self {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, ikm);
        let mut out = Zeroizing::new([0u8; 32]);
        hk.expand(HKDF_LABEL_STATE_KEY.as_bytes(), &mut *out)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self(out)
    }
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(***)")
    }
}

/// How a profile's key is kept; written once, when the profile is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Manifest {
    Keyring,
    Passphrase {
        salt: String,
        m_kib: u32,
        t: u32,
        p: u32,
    },
}

/// What `status` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Keyring,
    Passphrase,
}

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The passphrase path is in use and no passphrase was given.
    #[error("the state is locked: give the passphrase (QPQ_PASSPHRASE or the `unlock` call)")]
    NeedPassphrase,
    #[error("wrong passphrase")]
    WrongPassphrase,
    #[error(
        "this profile keeps its key in the OS keyring, which is not available now ({0}); \
         unlock or start the keyring and try again"
    )]
    KeyringUnavailable(String),
    #[error(
        "the OS keyring has no key for this profile although it was created with one; \
             the state cannot be decrypted"
    )]
    KeyringKeyMissing,
    #[error("{path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error(
        "{} exists but both copies of its key-store manifest ({MANIFEST} and \
         {MANIFEST_COPY}) are gone, so the passphrase's salt is lost and the state \
         cannot be opened; restore either file from a backup",
        state.display()
    )]
    ManifestLost { state: PathBuf },
}

/// The OS keyring, behind a small interface so tests can run against the
/// real Secret Service or a stand-in.
pub trait Keyring: Send + Sync {
    fn get(&self, profile: &str) -> Result<Option<Vec<u8>>, String>;
    fn set(&self, profile: &str, secret: &[u8]) -> Result<(), String>;
}

/// The real OS keyring via the `keyring` crate.
pub struct OsKeyring;

fn with_timeout<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("qpqd-keyring".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| e.to_string())?;
    rx.recv_timeout(KEYRING_TIMEOUT).unwrap_or_else(|_| {
        Err(format!(
            "the keyring did not answer within {} s (is it locked?)",
            KEYRING_TIMEOUT.as_secs()
        ))
    })
}

impl Keyring for OsKeyring {
    fn get(&self, profile: &str) -> Result<Option<Vec<u8>>, String> {
        let profile = profile.to_owned();
        with_timeout(move || {
            let entry =
                keyring::Entry::new(KEYRING_SERVICE, &profile).map_err(|e| e.to_string())?;
            match entry.get_secret() {
                Ok(s) => Ok(Some(s)),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn set(&self, profile: &str, secret: &[u8]) -> Result<(), String> {
        let profile = profile.to_owned();
        let secret = Zeroizing::new(secret.to_vec());
        with_timeout(move || {
            let entry =
                keyring::Entry::new(KEYRING_SERVICE, &profile).map_err(|e| e.to_string())?;
            entry.set_secret(&secret).map_err(|e| e.to_string())?;
            // Read it back: some stores accept a write they cannot keep.
            match entry.get_secret() {
                Ok(s) if s == *secret => Ok(()),
                Ok(_) => Err("the keyring returned another value than stored".into()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST)
}

/// One copy of the manifest: `Ok(None)` when the file does not exist.
fn read_copy(path: &Path) -> Result<Option<Manifest>, KeystoreError> {
    let err = |reason: String| KeystoreError::Manifest {
        path: path.to_owned(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            // Made 0644 by versions before 0600 was asked for.
            make_file_private(path);
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| err(e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e.to_string())),
    }
}

/// The profile's manifest from whichever copy survives, writing a missing
/// or unreadable copy again from the other (see the module docs).
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>, KeystoreError> {
    let (main, copy) = (dir.join(MANIFEST), dir.join(MANIFEST_COPY));
    let (from_main, from_copy) = (read_copy(&main), read_copy(&copy));
    let (manifest, lost) = match (from_main, from_copy) {
        (Ok(Some(a)), Ok(Some(b))) if a == b => (a, None),
        (Ok(Some(_)), Ok(Some(_))) => {
            return Err(KeystoreError::Manifest {
                path: main,
                reason: format!(
                    "it and {} say different things; restore the right one from a backup",
                    copy.display()
                ),
            })
        }
        (Ok(Some(m)), Ok(None) | Err(_)) => (m, Some(copy)),
        (Ok(None) | Err(_), Ok(Some(m))) => (m, Some(main)),
        (Ok(None), Ok(None)) => return Ok(None),
        // Neither is readable: the first error says why.
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    if let Some(path) = lost {
        tracing::warn!(file = %path.display(), "a copy of the key-store manifest was missing or unreadable; writing it again");
        write_file(&path, &manifest)?;
    }
    Ok(Some(manifest))
}

/// Writes both copies.
fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), KeystoreError> {
    write_file(&dir.join(MANIFEST), m)?;
    write_file(&dir.join(MANIFEST_COPY), m)
}

/// Writes one copy atomically, 0600: a temporary file, fsync, rename.
fn write_file(path: &Path, m: &Manifest) -> Result<(), KeystoreError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| KeystoreError::Manifest {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let bytes = serde_json::to_vec_pretty(m).expect("a manifest serializes");
    // A stale temporary file (a crash mid-write) may have another mode.
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Argon2id parameters for the passphrase path (OWASP's first option).
const ARGON_M_KIB: u32 = 19 * 1024;
const ARGON_T: u32 = 2;
const ARGON_P: u32 = 1;

fn stretch(
    passphrase: &str,
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<StateKey, KeystoreError> {
    let params = argon2::Params::new(m, t, p, Some(32)).map_err(|e| KeystoreError::Manifest {
        path: PathBuf::from(MANIFEST),
        reason: format!("invalid Argon2 parameters: {e}"),
    })?;
    let argon = quicproquo_protocol::opaque::Stretch(argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params,
    ));
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_into(passphrase.as_bytes(), salt, &mut *out)
        .map_err(|e| KeystoreError::Manifest {
            path: PathBuf::from(MANIFEST),
            reason: format!("Argon2id: {e}"),
        })?;
    Ok(StateKey::derive(&*out))
}

/// Obtains the state key of the profile whose state lives in `dir`,
/// creating it (and the manifest) for a new profile. Blocking: Argon2id and
/// the keyring take tens of milliseconds to seconds; call from a blocking
/// thread.
///
/// Whether the key is *right* is only known when the database opens; the
/// caller maps a failure there to [`KeystoreError::WrongPassphrase`].
pub fn obtain(
    dir: &Path,
    profile: &str,
    keyring: &dyn Keyring,
    passphrase: Option<&str>,
) -> Result<(StateKey, KeySource), KeystoreError> {
    match read_manifest(dir)? {
        Some(Manifest::Keyring) => match keyring.get(profile) {
            Ok(Some(secret)) => Ok((
                StateKey::derive(&Zeroizing::new(secret)),
                KeySource::Keyring,
            )),
            Ok(None) => Err(KeystoreError::KeyringKeyMissing),
            Err(e) => Err(KeystoreError::KeyringUnavailable(e)),
        },
        Some(Manifest::Passphrase { salt, m_kib, t, p }) => {
            let pass = passphrase.ok_or(KeystoreError::NeedPassphrase)?;
            let salt = hex::decode(&salt).map_err(|e| KeystoreError::Manifest {
                path: manifest_path(dir),
                reason: format!("salt: {e}"),
            })?;
            Ok((stretch(pass, &salt, m_kib, t, p)?, KeySource::Passphrase))
        }
        None => create(dir, profile, keyring, passphrase),
    }
}

/// Whether a state database already sits in `dir`: then a new manifest
/// would describe a key it was never encrypted with.
fn state_exists(dir: &Path) -> bool {
    dir.join(STATE_FILE).exists()
}

fn create(
    dir: &Path,
    profile: &str,
    keyring: &dyn Keyring,
    passphrase: Option<&str>,
) -> Result<(StateKey, KeySource), KeystoreError> {
    // A passphrase given on purpose wins; otherwise try the keyring.
    if passphrase.is_none() {
        // The entry is named by the profile only, so it may already hold the
        // key of a profile of that name in another data directory (or one
        // whose directory was deleted). Overwriting it would make that
        // state undecryptable for good; the new state uses the same key.
        match keyring.get(profile) {
            Ok(Some(existing)) => {
                write_manifest(dir, &Manifest::Keyring)?;
                tracing::info!(
                    "state key kept in the OS keyring (the entry for this profile name already existed; reused)"
                );
                return Ok((
                    StateKey::derive(&Zeroizing::new(existing)),
                    KeySource::Keyring,
                ));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(reason = %e, "no usable OS keyring; the state key will come from a passphrase");
                return Err(KeystoreError::NeedPassphrase);
            }
        }
        if state_exists(dir) {
            return Err(KeystoreError::ManifestLost {
                state: dir.join(STATE_FILE),
            });
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *secret);
        match keyring.set(profile, &*secret) {
            Ok(()) => {
                write_manifest(dir, &Manifest::Keyring)?;
                tracing::info!("state key kept in the OS keyring");
                return Ok((StateKey::derive(&*secret), KeySource::Keyring));
            }
            Err(e) => {
                tracing::warn!(reason = %e, "no usable OS keyring; the state key will come from a passphrase");
                return Err(KeystoreError::NeedPassphrase);
            }
        }
    }
    let pass = passphrase.ok_or(KeystoreError::NeedPassphrase)?;
    if state_exists(dir) {
        return Err(KeystoreError::ManifestLost {
            state: dir.join(STATE_FILE),
        });
    }
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let key = stretch(pass, &salt, ARGON_M_KIB, ARGON_T, ARGON_P)?;
    write_manifest(
        dir,
        &Manifest::Passphrase {
            salt: hex::encode(salt),
            m_kib: ARGON_M_KIB,
            t: ARGON_T,
            p: ARGON_P,
        },
    )?;
    tracing::info!("state key derived from a passphrase (Argon2id)");
    Ok((key, KeySource::Passphrase))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// A keyring stand-in: working, or failing like a missing D-Bus.
    #[derive(Default)]
    pub struct FakeKeyring {
        pub entries: Mutex<HashMap<String, Vec<u8>>>,
        pub broken: bool,
    }

    impl Keyring for FakeKeyring {
        fn get(&self, profile: &str) -> Result<Option<Vec<u8>>, String> {
            if self.broken {
                return Err("Unable to autolaunch a dbus-daemon".into());
            }
            Ok(self.entries.lock().unwrap().get(profile).cloned())
        }
        fn set(&self, profile: &str, secret: &[u8]) -> Result<(), String> {
            if self.broken {
                return Err("Unable to autolaunch a dbus-daemon".into());
            }
            self.entries
                .lock()
                .unwrap()
                .insert(profile.into(), secret.to_vec());
            Ok(())
        }
    }

    #[test]
    fn keyring_path_creates_then_reads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let kr = FakeKeyring::default();
        let (k1, src) = obtain(dir.path(), "default", &kr, None).unwrap();
        assert_eq!(src, KeySource::Keyring);
        assert_eq!(read_manifest(dir.path()).unwrap(), Some(Manifest::Keyring));
        let (k2, _) = obtain(dir.path(), "default", &kr, None).unwrap();
        assert_eq!(k1.expose(), k2.expose());
        // The keyring holds the input, not the database key itself.
        let stored = kr.entries.lock().unwrap()["default"].clone();
        assert_ne!(&stored[..], &k1.expose()[..]);
    }

    /// Regression: the keyring entry is named by profile only, and creating
    /// the same profile name under a second data directory overwrote it, so
    /// the first profile's state could never be opened again.
    #[test]
    fn a_second_data_dir_with_the_same_profile_name_keeps_the_first_key() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let kr = FakeKeyring::default();
        let (k1, _) = obtain(one.path(), "default", &kr, None).unwrap();
        let (k2, s2) = obtain(two.path(), "default", &kr, None).unwrap();
        assert_eq!(s2, KeySource::Keyring);
        assert_eq!(k2.expose(), k1.expose(), "the existing entry is reused");
        let (again, _) = obtain(one.path(), "default", &kr, None).unwrap();
        assert_eq!(again.expose(), k1.expose(), "the first profile still opens");
    }

    #[test]
    fn no_keyring_falls_back_to_a_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let broken = FakeKeyring {
            broken: true,
            ..Default::default()
        };
        assert!(matches!(
            obtain(dir.path(), "default", &broken, None),
            Err(KeystoreError::NeedPassphrase)
        ));
        assert_eq!(
            read_manifest(dir.path()).unwrap(),
            None,
            "nothing decided yet"
        );
        let (k1, src) = obtain(dir.path(), "default", &broken, Some("hunter2 hunter2")).unwrap();
        assert_eq!(src, KeySource::Passphrase);
        let (k2, _) = obtain(dir.path(), "default", &broken, Some("hunter2 hunter2")).unwrap();
        assert_eq!(k1.expose(), k2.expose());
        let (k3, _) = obtain(dir.path(), "default", &broken, Some("wrong")).unwrap();
        assert_ne!(
            k1.expose(),
            k3.expose(),
            "a wrong passphrase gives another key"
        );
        // Once a passphrase profile, always: a working keyring changes nothing.
        let working = FakeKeyring::default();
        assert!(matches!(
            obtain(dir.path(), "default", &working, None),
            Err(KeystoreError::NeedPassphrase)
        ));
    }

    #[test]
    fn a_keyring_profile_never_silently_becomes_a_fresh_one() {
        let dir = tempfile::tempdir().unwrap();
        let kr = FakeKeyring::default();
        obtain(dir.path(), "default", &kr, None).unwrap();
        let broken = FakeKeyring {
            broken: true,
            ..Default::default()
        };
        assert!(matches!(
            obtain(dir.path(), "default", &broken, Some("pass")),
            Err(KeystoreError::KeyringUnavailable(_))
        ));
        let empty = FakeKeyring::default();
        assert!(matches!(
            obtain(dir.path(), "default", &empty, None),
            Err(KeystoreError::KeyringKeyMissing)
        ));
    }

    /// Against the real OS keyring (a Secret Service in CI: gnome-keyring
    /// under dbus-run-session, started by .ci/run).
    #[test]
    fn os_keyring_stores_and_reads_back() {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
            // qpqd's unit tests cannot use the test kit (it depends on this
            // crate); the rule is the kit's `skip`: never skip in CI.
            assert!(
                std::env::var_os("QPQ_TEST_REQUIRE_ALL").is_none_or(|v| v != "1"),
                "no D-Bus session bus, so no Secret Service, and QPQ_TEST_REQUIRE_ALL=1 forbids skipping"
            );
            eprintln!("skipped: no D-Bus session bus, so no Secret Service (CI runs this under dbus-run-session)");
            return;
        }
        let profile = format!("qpq-test-{}", hex::encode(rand::random::<[u8; 6]>()));
        let dir = tempfile::tempdir().unwrap();
        let (k1, src) = obtain(dir.path(), &profile, &OsKeyring, None).unwrap();
        assert_eq!(src, KeySource::Keyring);
        let (k2, _) = obtain(dir.path(), &profile, &OsKeyring, None).unwrap();
        assert_eq!(k1.expose(), k2.expose());
        let entry = keyring::Entry::new(KEYRING_SERVICE, &profile).unwrap();
        assert_eq!(entry.get_secret().unwrap().len(), 32);
        entry.delete_credential().unwrap();
        // Gone from the keyring: the profile reports it instead of starting over.
        assert!(matches!(
            obtain(dir.path(), &profile, &OsKeyring, None),
            Err(KeystoreError::KeyringKeyMissing)
        ));
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn passphrase_profile() -> (tempfile::TempDir, FakeKeyring, StateKey) {
        let dir = tempfile::tempdir().unwrap();
        let broken = FakeKeyring {
            broken: true,
            ..Default::default()
        };
        let (key, _) = obtain(dir.path(), "default", &broken, Some("pass")).unwrap();
        // The state exists from here on, as after the first open.
        std::fs::write(dir.path().join(STATE_FILE), b"encrypted").unwrap();
        (dir, broken, key)
    }

    /// Regression: the Argon2id salt was only in `keystore.json`; deleting
    /// that file made the next start derive a fresh salt, a key that never
    /// opened the state, and overwrite the manifest with it.
    #[test]
    fn either_copy_of_the_manifest_restores_the_other() {
        let (dir, broken, key) = passphrase_profile();
        let (main, copy) = (dir.path().join(MANIFEST), dir.path().join(MANIFEST_COPY));
        let original = std::fs::read(&main).unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), original);
        for lost in [&main, &copy] {
            std::fs::remove_file(lost).unwrap();
            let (again, _) = obtain(dir.path(), "default", &broken, Some("pass")).unwrap();
            assert_eq!(again.expose(), key.expose(), "{}", lost.display());
            assert_eq!(std::fs::read(lost).unwrap(), original, "written again");
            // Unreadable counts as lost too.
            std::fs::write(lost, b"{not json").unwrap();
            let (again, _) = obtain(dir.path(), "default", &broken, Some("pass")).unwrap();
            assert_eq!(again.expose(), key.expose());
            assert_eq!(std::fs::read(lost).unwrap(), original);
        }
    }

    #[test]
    fn copies_that_disagree_or_are_both_gone_are_refused_not_replaced() {
        let (dir, broken, _) = passphrase_profile();
        let (main, copy) = (dir.path().join(MANIFEST), dir.path().join(MANIFEST_COPY));
        let other = serde_json::to_vec(&Manifest::Passphrase {
            salt: "00".repeat(16),
            m_kib: ARGON_M_KIB,
            t: ARGON_T,
            p: ARGON_P,
        })
        .unwrap();
        std::fs::write(&copy, &other).unwrap();
        let err = obtain(dir.path(), "default", &broken, Some("pass")).unwrap_err();
        assert!(err.to_string().contains("different"), "{err}");
        assert_eq!(std::fs::read(&copy).unwrap(), other, "nothing overwritten");

        std::fs::remove_file(&main).unwrap();
        std::fs::remove_file(&copy).unwrap();
        let err = obtain(dir.path(), "default", &broken, Some("pass")).unwrap_err();
        assert!(matches!(err, KeystoreError::ManifestLost { .. }), "{err}");
        assert!(!main.exists() && !copy.exists(), "no made-up manifest");
        // Without a passphrase and with an empty keyring: the same.
        let empty = FakeKeyring::default();
        let err = obtain(dir.path(), "default", &empty, None).unwrap_err();
        assert!(matches!(err, KeystoreError::ManifestLost { .. }), "{err}");
        assert!(
            empty.entries.lock().unwrap().is_empty(),
            "no new keyring key"
        );
    }

    #[test]
    fn the_manifest_files_are_private() {
        let (dir, broken, _) = passphrase_profile();
        for name in [MANIFEST, MANIFEST_COPY] {
            assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
        }
        // One left 0644 by an older version is tightened when read.
        use std::os::unix::fs::PermissionsExt;
        let main = dir.path().join(MANIFEST);
        std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o644)).unwrap();
        obtain(dir.path(), "default", &broken, Some("pass")).unwrap();
        assert_eq!(mode(&main), 0o600);
    }

    #[test]
    fn key_debug_hides_the_key() {
        let k = StateKey::derive(b"x");
        assert_eq!(format!("{k:?}"), "StateKey(***)");
    }
}

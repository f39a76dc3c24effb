//! The server's TLS identity: a self-signed certificate generated once and
//! kept, or an operator's CA-issued chain; reloadable (SIGHUP) without
//! dropping connections, because rustls asks the resolver for every new
//! handshake.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::TlsSource;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
}

fn file_err(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// aws-lc-rs, whose key exchange order (crate feature
/// `prefer-post-quantum`) puts the hybrid X25519MLKEM768 first: a recorded
/// session cannot be decrypted later by a quantum computer. X25519 alone
/// stays for clients that do not offer the hybrid.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Loads the identity `source` names, generating the self-signed one on first
/// start.
pub fn load(source: &TlsSource) -> Result<Arc<CertifiedKey>, TlsError> {
    match source {
        TlsSource::Files { cert, key } => load_pem(cert, key),
        TlsSource::SelfSigned { dir, hostnames } => {
            let cert = dir.join("cert.pem");
            let key = dir.join("key.pem");
            if !cert.exists() && !key.exists() {
                generate(dir, hostnames)?;
            }
            load_pem(&cert, &key)
        }
    }
}

fn generate(dir: &Path, hostnames: &[String]) -> Result<(), TlsError> {
    let (cert, key) = generate_pem(hostnames)?;
    install_self_signed(dir, &cert, &key)
}

/// A new self-signed certificate for `hostnames` and its key, both PEM.
pub fn generate_pem(hostnames: &[String]) -> Result<(String, String), TlsError> {
    let generated = rcgen::generate_simple_self_signed(hostnames.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok((generated.cert.pem(), generated.signing_key.serialize_pem()))
}

/// Makes `cert` and `key` (PEM) the self-signed identity kept in `dir`,
/// replacing one that was there (a node sharing its database's identity).
pub fn install_self_signed(dir: &Path, cert: &str, key: &str) -> Result<(), TlsError> {
    fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let key_path = dir.join("key.pem");
    let cert_path = dir.join("cert.pem");
    for path in [&key_path, &cert_path] {
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_err(path, e)),
            _ => {}
        }
    }
    write_private(&key_path, key.as_bytes())?;
    fs::write(&cert_path, cert).map_err(|e| file_err(&cert_path, e))?;
    Ok(())
}

/// Writes a secret file readable by its owner only, refusing to overwrite.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| file_err(path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| file_err(path, e))
}

fn load_pem(cert_path: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_pem = fs::read(cert_path).map_err(|e| file_err(cert_path, e))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert_path, e))?;
    if certs.is_empty() {
        return Err(file_err(cert_path, "no PEM certificate found"));
    }
    let key_pem = fs::read(key_path).map_err(|e| file_err(key_path, e))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| file_err(key_path, e))?
        .ok_or_else(|| file_err(key_path, "no PEM private key found"))?;
    let key = CertifiedKey::from_der(certs, key, &provider()).map_err(|e| {
        file_err(
            key_path,
            format!("key does not match the certificate or is unsupported: {e}"),
        )
    })?;
    Ok(Arc::new(key))
}

/// SHA-256 fingerprint of the leaf certificate, as clients pin it.
pub fn fingerprint_hex(key: &CertifiedKey) -> String {
    key.cert
        .first()
        .map(|c| hex::encode(quicproquo_protocol::cert_fingerprint(c)))
        .unwrap_or_default()
}

/// Hands rustls the current certificate; [`ReloadableCert::reload`] swaps it.
#[derive(Debug)]
pub struct ReloadableCert {
    source: TlsSource,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    pub fn new(source: TlsSource) -> Result<Self, TlsError> {
        let current = RwLock::new(load(&source)?);
        Ok(Self { source, current })
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Re-reads the certificate and key; on error the old pair stays in use.
    /// Existing connections are untouched; new handshakes use the new pair.
    pub fn reload(&self) -> Result<String, TlsError> {
        let fresh = load(&self.source)?;
        let fp = fingerprint_hex(&fresh);
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(fp)
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// TLS 1.3 only, ALPN `qpq/2` (and the older ALPNs, answered E048 by the
/// server), and no 0-RTT: early data could be replayed,
/// and most requests (enqueue, login) are not idempotent.
pub fn server_config(resolver: Arc<ReloadableCert>) -> Result<rustls::ServerConfig, TlsError> {
    server_config_with(resolver, provider())
}

/// [`server_config`] with other TLS primitives (tests restrict the key
/// exchange groups).
pub fn server_config_with(
    resolver: Arc<ReloadableCert>,
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Generate(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = std::iter::once(quicproquo_protocol::ALPN)
        .chain(quicproquo_protocol::OLD_ALPNS.iter().copied())
        .map(<[u8]>::to_vec)
        .collect();
    cfg.max_early_data_size = 0;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hybrid_key_exchange_comes_first() {
        let groups: Vec<_> = provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            groups.first(),
            Some(&rustls::NamedGroup::X25519MLKEM768),
            "{groups:?}"
        );
        assert!(groups.contains(&rustls::NamedGroup::X25519), "{groups:?}");
    }

    #[test]
    fn self_signed_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let src = TlsSource::SelfSigned {
            dir: dir.path().join("tls"),
            hostnames: vec!["localhost".into()],
        };
        let a = fingerprint_hex(&load(&src).unwrap());
        let b = fingerprint_hex(&load(&src).unwrap());
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("tls/key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn reload_swaps_the_certificate_and_keeps_the_old_one_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let gen = |sub: &str| {
            let d = dir.path().join(sub);
            generate(&d, &["localhost".into()]).unwrap();
            (d.join("cert.pem"), d.join("key.pem"))
        };
        let (c1, k1) = gen("one");
        let (c2, k2) = gen("two");
        let live_cert = dir.path().join("live-cert.pem");
        let live_key = dir.path().join("live-key.pem");
        fs::copy(&c1, &live_cert).unwrap();
        fs::copy(&k1, &live_key).unwrap();
        let r = ReloadableCert::new(TlsSource::Files {
            cert: live_cert.clone(),
            key: live_key.clone(),
        })
        .unwrap();
        let first = fingerprint_hex(&r.current());

        fs::copy(&c2, &live_cert).unwrap();
        fs::copy(&k2, &live_key).unwrap();
        let second = r.reload().unwrap();
        assert_ne!(first, second);
        assert_eq!(fingerprint_hex(&r.current()), second);

        // A mismatched pair is refused and the current pair stays.
        fs::copy(&k1, &live_key).unwrap();
        let e = r.reload().unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        assert_eq!(fingerprint_hex(&r.current()), second);

        fs::write(&live_cert, "not pem").unwrap();
        assert!(r
            .reload()
            .unwrap_err()
            .to_string()
            .contains("no PEM certificate"));
    }
}

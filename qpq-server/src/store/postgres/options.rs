//! What a `postgres://` URL says: where to connect, how (TLS per `sslmode`,
//! verified against the system roots or `sslrootcert=`), and the pool size.
//!
//! The URL goes to tokio-postgres' own parser after qpq's parameters
//! (`sslrootcert`, `pool_size`) are taken out, since it refuses options it
//! does not know. The password never leaves this module: [`PgOptions`]
//! displays and debugs the URL with it replaced by `***`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Connections the pool keeps at most, unless `pool_size=` says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// Defaults where the URL says nothing (see [`PgOptions::from_str`]).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;

/// A parsed `postgres://` / `postgresql://` URL.
#[derive(Clone)]
pub struct PgOptions {
    /// The URL as given, for [`fmt::Display`] (redacted there).
    url: String,
    pub(super) config: tokio_postgres::Config,
    /// `sslrootcert=`: the CA certificates (PEM) the server's certificate
    /// must chain to, instead of the system's roots.
    pub(super) root_cert: Option<PathBuf>,
    pub(super) pool_size: usize,
}

/// Why a database URL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("database URL {url}: {reason}")]
pub struct UrlError {
    /// Redacted.
    url: String,
    reason: String,
}

impl PgOptions {
    /// Whether `s` names a PostgreSQL database rather than a SQLite file.
    pub fn is_postgres_url(s: &str) -> bool {
        s.starts_with("postgres://") || s.starts_with("postgresql://")
    }

    /// How many connections the pool keeps at most.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// The rustls connector for this URL's `sslmode`: unused with
    /// `disable`; otherwise the server's certificate is verified (chain and
    /// host name) against `sslrootcert` or the system's roots.
    pub(super) fn tls(&self) -> Result<MakeRustlsConnect, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                let certs: Vec<CertificateDer<'static>> =
                    rustls_pemfile::certs(&mut pem.as_slice())
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                if certs.is_empty() {
                    return Err(format!(
                        "sslrootcert {}: no PEM certificate found",
                        path.display()
                    ));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                }
            }
            None if self.config.get_ssl_mode() != SslMode::Disable => {
                // Unreadable system certificates are skipped, as every
                // rustls user of the native store does; none at all fails
                // the connection later with a verification error.
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
            None => {}
        }
        let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(Arc::new(roots))
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    fn error(url: &str, reason: impl Into<String>) -> UrlError {
        UrlError {
            url: redact(url),
            reason: reason.into(),
        }
    }
}

impl FromStr for PgOptions {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        if !Self::is_postgres_url(url) {
            return Err(Self::error(
                url,
                "must start with postgres:// or postgresql://",
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut root_cert = None;
        let mut pool_size = DEFAULT_POOL_SIZE;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(value))),
                "pool_size" => {
                    pool_size = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(|| {
                            Self::error(url, "pool_size must be a number from 1 to 1000")
                        })?;
                }
                // qpq verifies the host name whenever TLS is used, so
                // libpq's strictest mode is what `require` does here.
                "sslmode" if value == "verify-full" => kept.push("sslmode=require".to_owned()),
                "sslmode" if !matches!(value, "disable" | "prefer" | "require") => {
                    return Err(Self::error(
                        url,
                        format!(
                            "sslmode={value} is not supported: use disable, prefer, require \
                             or verify-full (with TLS the certificate and host name are \
                             always verified)"
                        ),
                    ));
                }
                _ => kept.push(pair.to_owned()),
            }
        }
        let rebuilt = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config = tokio_postgres::Config::from_str(&rebuilt)
            .map_err(|e| Self::error(url, e.to_string()))?;
        let given = |key: &str| kept.iter().any(|p| p.split('=').next() == Some(key));
        // An unreachable host must not hold a start for minutes, and a
        // silently dead LISTEN connection must be noticed in seconds (it
        // would miss every change), not after the kernel's two hours.
        if !given("connect_timeout") {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if !given("keepalives_idle") {
            config.keepalives_idle(KEEPALIVE_IDLE);
        }
        if !given("keepalives_interval") {
            config.keepalives_interval(KEEPALIVE_INTERVAL);
        }
        if !given("keepalives_retries") {
            config.keepalives_retries(KEEPALIVE_RETRIES);
        }
        if config.get_hosts().is_empty() {
            return Err(Self::error(url, "no host given"));
        }
        Ok(PgOptions {
            url: url.to_owned(),
            config,
            root_cert,
            pool_size,
        })
    }
}

impl fmt::Display for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgOptions({self})")
    }
}

impl PartialEq for PgOptions {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl Eq for PgOptions {}

/// `url` with the password (in the user part, or a `password=` parameter)
/// replaced by `***`.
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            // The user part ends at the last '@' before the first '/'.
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((user, host)) => match user.split_once(':') {
                    Some((name, _)) => format!("{scheme}://{name}:***@{host}{path}"),
                    None => base.to_owned(),
                },
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some(("password", _)) => "password=***".to_owned(),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Decodes `%XX` escapes (a path in a URL parameter); anything malformed is
/// kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        for url in [
            "postgres://qpq:s3cret@db.example:5432/qpq",
            "postgresql://qpq:s3cret@db.example/qpq?sslmode=require",
            "postgres://qpq@db.example/qpq?password=s3cret&sslmode=disable",
        ] {
            let parsed: PgOptions = url.parse().expect("valid");
            for shown in [parsed.to_string(), format!("{parsed:?}"), redact(url)] {
                assert!(!shown.contains("s3cret"), "{shown}");
                assert!(shown.contains("db.example"), "{shown}");
            }
        }
        let bad = "postgres://qpq:s3cret@db.example/qpq?sslmode=verify-ca"
            .parse::<PgOptions>()
            .expect_err("verify-ca is refused");
        let shown = bad.to_string();
        assert!(
            !shown.contains("s3cret") && shown.contains("verify-ca"),
            "{shown}"
        );
    }

    #[test]
    fn qpq_parameters_are_taken_out() {
        let o: PgOptions =
            "postgres://u@h/d?sslmode=verify-full&sslrootcert=/etc/ca%20x.pem&pool_size=3"
                .parse()
                .expect("valid");
        assert_eq!(o.pool_size(), 3);
        assert_eq!(o.root_cert, Some(PathBuf::from("/etc/ca x.pem")));
        assert_eq!(o.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(o.config.get_dbname(), Some("d"));
        assert_eq!(o.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        let o: PgOptions = "postgres://u@h/d?connect_timeout=3".parse().expect("valid");
        assert_eq!(
            o.config.get_connect_timeout(),
            Some(&Duration::from_secs(3)),
            "the URL's own value wins"
        );
        for bad in [
            "postgres://u@h/d?pool_size=0",
            "postgres://u@h/d?nonsense=1",
            "mysql://u@h/d",
            "postgres://u@h/d?sslmode=allow",
        ] {
            assert!(bad.parse::<PgOptions>().is_err(), "{bad}");
        }
    }
}

//! What `qpq-server` prints on stdout when it is ready: where it listens, its
//! data directory, its certificate's fingerprint and — for a self-signed
//! certificate — the command a new user runs to join. Pure, so tests read
//! the exact text an operator sees.

use std::net::SocketAddr;
use std::path::Path;

/// The start banner. `self_signed`: clients must pin `fingerprint`.
pub fn banner(listen: SocketAddr, data_dir: &Path, fingerprint: &str, self_signed: bool) -> String {
    let mut out = format!(
        "qpq-server listening on {listen}\ndata directory: {}\ncertificate SHA-256 fingerprint: {fingerprint}\n",
        data_dir.display(),
    );
    if self_signed {
        // A wildcard address is where the server listens, not an address a
        // client can dial: name the placeholder instead.
        let (server, note) = if listen.ip().is_unspecified() {
            (
                format!("HOST:{}", listen.port()),
                " (HOST: this machine's name or address; the server listens on all of them)",
            )
        } else {
            (listen.to_string(), "")
        };
        // `register`, not `login`: a new user's first step on any server,
        // and a profile that logs in has kept its pin already.
        out.push_str(&format!(
            "(self-signed: clients pin this fingerprint; a new user joins with\n  \
             qpq-ctl register --server {server} --server-fingerprint {fingerprint} NAME{note})\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "ab12";

    #[test]
    fn a_new_user_is_told_to_register_at_an_address_they_can_dial() {
        let b = banner(
            "192.0.2.7:7443".parse().unwrap(),
            Path::new("/srv/qpq"),
            FP,
            true,
        );
        assert!(
            b.starts_with("qpq-server listening on 192.0.2.7:7443\n"),
            "{b}"
        );
        assert!(
            b.contains("qpq-ctl register --server 192.0.2.7:7443 --server-fingerprint ab12 NAME"),
            "{b}"
        );
        assert!(!b.contains("login"), "{b}");
    }

    #[test]
    fn a_wildcard_listen_address_is_not_offered_as_one_to_connect_to() {
        for listen in ["0.0.0.0:7443", "[::]:7443"] {
            let b = banner(listen.parse().unwrap(), Path::new("/srv/qpq"), FP, true);
            let hint = b.split_once("qpq-ctl").unwrap().1;
            assert!(hint.contains("--server HOST:7443"), "{b}");
            assert!(!hint.contains("0.0.0.0") && !hint.contains("[::]"), "{b}");
            // The line that says where it listens stays exact.
            assert!(
                b.starts_with(&format!("qpq-server listening on {listen}\n")),
                "{b}"
            );
        }
    }

    #[test]
    fn a_ca_certificate_needs_no_pinning_hint() {
        let b = banner(
            "192.0.2.7:7443".parse().unwrap(),
            Path::new("/srv"),
            FP,
            false,
        );
        assert!(!b.contains("qpq-ctl"), "{b}");
        assert!(b.contains("certificate SHA-256 fingerprint: ab12"), "{b}");
    }
}

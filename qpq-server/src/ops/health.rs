//! `qpq-server health [ADDR]`: one QUIC `health` request to a running
//! server, exit 0 when it answers and 1 otherwise (what a container
//! HEALTHCHECK or a script runs). By default it asks the configured listen
//! address (an unspecified IP such as 0.0.0.0 is asked on loopback) and pins
//! the configured certificate, read from its file, so on the server's own
//! machine no flag is needed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use quicproquo_protocol::client::{Client, Trust};
use quicproquo_protocol::wire::{Request, Response};

use super::problem;
use crate::config::{Cli, Config, TlsSource};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server's address [default: the configured listen address]
    pub addr: Option<SocketAddr>,
    /// Pin this certificate fingerprint (64 hex digits) [default: the
    /// fingerprint of the configured certificate file]
    #[arg(long, conflicts_with = "insecure_local")]
    pub fingerprint: Option<String>,
    /// Accept any certificate (loopback addresses only)
    #[arg(long)]
    pub insecure_local: bool,
    /// Seconds to wait for the answer, connection included
    #[arg(long, default_value_t = 5)]
    pub timeout_secs: u64,
}

pub async fn run(args: Args, cli: Cli) -> i32 {
    match ask(args, cli).await {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => {
            problem(format!("unhealthy: {e}"));
            1
        }
    }
}

async fn ask(args: Args, cli: Cli) -> Result<String, String> {
    let config = Config::load(cli).map_err(|e| e.to_string())?;
    let addr = args.addr.unwrap_or_else(|| loopback_for(config.listen));
    let trust = if args.insecure_local {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "--insecure-local is for loopback addresses only, not {addr}"
            ));
        }
        Trust::FirstUse
    } else {
        let pin = match &args.fingerprint {
            Some(hex) => quicproquo_protocol::parse_fingerprint(hex)
                .ok_or_else(|| "--fingerprint must be 64 hex digits".to_string())?,
            None => configured_fingerprint(&config.tls)?,
        };
        Trust::Pin(pin)
    };
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let asked = async {
        let client = Client::connect(addr, "localhost", trust)
            .await
            .map_err(|e| e.to_string())?;
        let answer = client
            .call(&Request::Health)
            .await
            .map_err(|e| e.to_string());
        client.close().await;
        answer
    };
    match tokio::time::timeout(timeout, asked).await {
        Err(_) => Err(format!("{addr}: no answer within {} s", timeout.as_secs())),
        Ok(Err(e)) => Err(e),
        Ok(Ok(Response::Health {
            protocol_version,
            server_version,
            ..
        })) => Ok(format!(
            "healthy: {addr} answers (qpq-server {server_version}, protocol {protocol_version})"
        )),
        Ok(Ok(other)) => Err(format!("{addr} answered {} to health", other.kind())),
    }
}

/// Where a client on this machine reaches a server listening on `listen`.
fn loopback_for(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// The SHA-256 of the leaf certificate the server is configured with.
fn configured_fingerprint(tls: &TlsSource) -> Result<quicproquo_protocol::Fingerprint, String> {
    let path = match tls {
        TlsSource::Files { cert, .. } => cert.clone(),
        TlsSource::SelfSigned { dir, .. } => dir.join("cert.pem"),
    };
    leaf_fingerprint(&path).map_err(|e| {
        format!(
            "certificate {}: {e} (give --fingerprint, or --insecure-local on loopback)",
            path.display()
        )
    })
}

fn leaf_fingerprint(path: &Path) -> Result<quicproquo_protocol::Fingerprint, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let first = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .ok_or("no PEM certificate in it")?
        .map_err(|e| e.to_string())?;
    Ok(quicproquo_protocol::cert_fingerprint(&first))
}

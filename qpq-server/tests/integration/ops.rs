//! What an operator runs beside the server: the metrics and health
//! listener, `check-config`, `health`, `backup` and `restore`.

use std::net::SocketAddr;
use std::process::Stdio;

use quicproquo_protocol::client::{Client, Trust};
use quicproquo_protocol::wire::{Delivery, Request, Response};
use quicproquo_server::config::TlsSource;
use quicproquo_testkit::agent::eventually;
use quicproquo_testkit::process::output;
use quicproquo_testkit::wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::binary::{command, start, terminate};
use crate::harness::{app_message, idem, TestServer};

/// One HTTP GET; the status and the body.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: qpq\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// The value of one sample line of a scrape.
fn sample(scrape: &str, series: &str) -> Option<u64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_and_health_over_http_and_503_while_draining() {
    let mut srv =
        TestServer::start_with(|c| c.metrics_listen = Some(([127, 0, 0, 1], 0).into())).await;
    let http = srv
        .running
        .as_ref()
        .unwrap()
        .metrics_addr
        .expect("metrics address");
    assert_eq!(get(http, "/health").await, Some((200, "ok\n".into())));

    let c = srv.client().await;
    let series = "qpq_requests_total{kind=\"health\",code=\"ok\"}";
    let before = sample(&get(http, "/metrics").await.unwrap().1, series).unwrap();
    c.call(&Request::Health).await.unwrap();
    let (status, scrape) = get(http, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    // Other tests of this binary count too (the families are per process).
    assert!(sample(&scrape, series).unwrap() > before, "{scrape}");
    assert!(
        sample(&scrape, "qpq_connections_open").unwrap() >= 1,
        "{scrape}"
    );
    for family in [
        "qpq_fetch_waits_held",
        "qpq_store_queue_depth",
        "qpq_store_commit_seconds_count",
    ] {
        assert!(
            sample(&scrape, family).is_some(),
            "{family} missing: {scrape}"
        );
    }
    assert_eq!(get(http, "/").await.map(|r| r.0), Some(404));

    // A request left half-sent holds the drain open; the health request
    // after it, on the same connection, is answered only once the server
    // has taken that stream.
    let (mut half, _recv) = c.connection().open_bi().await.unwrap();
    half.write_all(&[0u8; 3]).await.unwrap();
    c.call(&Request::Health).await.unwrap();
    let stopping = tokio::spawn(srv.running.take().unwrap().shutdown());
    eventually("/health answers 503 while the server drains", || async {
        get(http, "/health")
            .await
            .filter(|(status, body)| *status == 503 && body.contains("draining"))
    })
    .await
    .unwrap();
    c.close().await;
    stopping.await.unwrap();
    assert!(
        TcpStream::connect(http).await.is_err(),
        "the metrics listener stops with the server"
    );
}

#[tokio::test]
async fn check_config_names_each_problem_and_passes_a_sound_configuration() {
    // Two certificates: the key of one does not belong to the other.
    let (one, two) = (TestServer::start().await, TestServer::start().await);
    let tls_dir = |s: &TestServer| match &s.config.tls {
        TlsSource::SelfSigned { dir, .. } => dir.clone(),
        other => panic!("{other:?}"),
    };
    let cert = tls_dir(&one).join("cert.pem");
    let wrong_key = tls_dir(&two).join("key.pem");
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("data");
    std::fs::write(&not_a_dir, "a file where the data directory should be").unwrap();
    // A configuration file of its own: the default one is inside the data directory.
    let file = dir.path().join("qpq-server.toml");
    std::fs::write(&file, "max_connections = 100\n").unwrap();

    let out = output(
        command(&not_a_dir)
            .stderr(Stdio::piped())
            .arg("--config")
            .arg(&file)
            .args(["check-config", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&wrong_key),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let problems = String::from_utf8_lossy(&out.stderr);
    assert!(
        problems.contains("data directory") && problems.contains("not a directory"),
        "{problems}"
    );
    assert!(problems.contains("does not match"), "{problems}");
    assert!(problems.contains("database directory"), "{problems}");
    assert_eq!(
        problems.lines().count(),
        3,
        "one line per problem: {problems}"
    );

    let out = output(
        command(&dir.path().join("fresh"))
            .args(["check-config", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(tls_dir(&one).join("key.pem")),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let checked = String::from_utf8_lossy(&out.stdout);
    for what in ["TLS:", "data directory", "listen 127.0.0.1:0", "database"] {
        assert!(checked.contains(what), "{what} not checked: {checked}");
    }
}

#[tokio::test]
async fn health_exits_0_only_for_a_server_that_answers_with_the_pinned_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (child, addr, _) = start(&data).await;
    let addr = addr.to_string();
    let health = |args: &[&str]| {
        let mut c = command(&data);
        c.stderr(Stdio::piped()).arg("health").args(args);
        async move { output(&mut c).await }
    };

    // The certificate pinned by default is the one in the data directory.
    let out = health(&[&addr]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("healthy"),
        "{out:?}"
    );
    assert!(health(&[&addr, "--insecure-local"]).await.status.success());

    let wrong = "ab".repeat(32);
    let out = health(&[&addr, "--fingerprint", &wrong]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = health(&["192.0.2.1:7443", "--insecure-local"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loopback"),
        "{out:?}"
    );
    let out = health(&["127.0.0.1:9", "--timeout-secs", "1"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(terminate(child).await.success());
}

#[tokio::test]
async fn backup_while_serving_then_restore_after_kill_9_keeps_accounts_and_mail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("first");
    let (mut child, addr, fp) = start(&data).await;

    let pin = quicproquo_protocol::parse_fingerprint(&fp).unwrap();
    let client = Client::connect(addr, "localhost", Trust::Pin(pin))
        .await
        .unwrap();
    let mut alice = wire::register(&client, "alice").await;
    let bob = wire::register(&client, "bob").await;
    let channel = wire::first_dm(&client, &bob, &alice).await;
    let mail = app_message(b"written before the backup");
    let sent = client
        .call(&Request::Enqueue {
            auth: bob.session.token.clone(),
            deliveries: vec![Delivery {
                recipient: alice.identity,
                channel: Some(channel),
            }],
            payload: mail.clone(),
            idempotency_key: idem(),
        })
        .await
        .unwrap();
    assert!(matches!(sent, Response::Enqueue { .. }), "{sent:?}");

    let backup = dir.path().join("qpq-backup.db");
    let out = output(command(&data).arg("backup").arg("--out").arg(&backup)).await;
    assert!(out.status.success(), "{out:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the backup is private");
    }
    // Refused while the server holds its data directory.
    let out = output(
        command(&data)
            .arg("restore")
            .arg("--force")
            .arg("--from")
            .arg(&backup),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    child.start_kill().unwrap();
    child.wait().await.unwrap();
    client.close().await;

    let fresh = dir.path().join("second");
    let out = output(command(&fresh).arg("restore").arg("--from").arg(&backup)).await;
    assert!(out.status.success(), "{out:?}");
    let (child, addr, fp) = start(&fresh).await;
    let pin = quicproquo_protocol::parse_fingerprint(&fp).unwrap();
    let client = Client::connect(addr, "localhost", Trust::Pin(pin))
        .await
        .unwrap();
    alice.session = client
        .login(&alice.username, alice.password.as_bytes())
        .await
        .expect("alice logs in on the restored server");
    let fetched = wire::take_mail(&client, &alice).await;
    let expected = quicproquo_protocol::padding::unpad(&mail).unwrap().to_vec();
    assert_eq!(fetched, vec![expected]);
    client.close().await;
    assert!(terminate(child).await.success());
}

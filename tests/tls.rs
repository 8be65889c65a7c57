//! TLS on a real server: TLS 1.3 for the API and the feed, TLS 1.2 refused, a
//! key that is not the certificate's refused at startup, and a new certificate
//! taken on SIGHUP without a restart. Certificates are made at run time.

mod common;

use common::app::{run, test_settings};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A self-signed certificate for `localhost`, written as PEM files in `dir`.
struct Pair {
    cert_pem: String,
    cert_path: String,
    key_path: String,
}

fn pair(dir: &std::path::Path, name: &str) -> Pair {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert_pem = made.cert.pem();
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, &cert_pem).expect("write cert");
    std::fs::write(&key_path, made.signing_key.serialize_pem()).expect("write key");
    Pair {
        cert_pem,
        cert_path: cert_path.display().to_string(),
        key_path: key_path.display().to_string(),
    }
}

/// A server with TLS from `pair`; its `https://` base.
async fn tls_server(dir: &tempfile::TempDir, pair: &Pair) -> u16 {
    let mut settings = test_settings(dir);
    settings.tls.cert_path = pair.cert_path.clone();
    settings.tls.key_path = pair.key_path.clone();
    let base = run(settings).await;
    base.rsplit(':')
        .next()
        .expect("port")
        .parse()
        .expect("a port")
}

fn client(trusted: &str, versions: &[&'static SupportedProtocolVersion]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(trusted.as_bytes())
        .map(|cert: CertificateDer<'static>| cert)
        .expect("a certificate");
    roots.add(der).expect("a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn connect(port: u16, connector: &TlsConnector) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("localhost").expect("a name");
    connector.connect(name, tcp).await
}

/// Connects until the server answers (it starts in the background).
async fn connect_ready(port: u16, connector: &TlsConnector) -> TlsStream<TcpStream> {
    for _ in 0..200 {
        if let Ok(stream) = connect(port, connector).await {
            return stream;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the TLS server never answered")
}

async fn get(mut stream: TlsStream<TcpStream>, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    // The server may close without a TLS close_notify; what was read counts.
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix_web::test]
async fn the_api_and_the_feed_are_served_over_tls_1_3_and_tls_1_2_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pair = pair(dir.path(), "server");
    let port = tls_server(&dir, &pair).await;
    let tls13 = client(&pair.cert_pem, &[&rustls::version::TLS13]);
    let stream = connect_ready(port, &tls13).await;
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    let answer = get(stream, "/health").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // The feed: a WebSocket upgrade over the same TLS.
    let token = common::tokens::operator_token(common::app::TEST_SECRET, "tls");
    let stream = connect_ready(port, &tls13).await;
    let url = format!("wss://localhost:{port}/v1/feed?access_token={token}");
    let (_socket, response) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("the feed upgrades over TLS");
    assert_eq!(response.status(), 101);

    // A client that speaks TLS 1.2 at most gets no connection.
    let tls12 = client(&pair.cert_pem, &[&rustls::version::TLS12]);
    let refused = connect(port, &tls12).await;
    assert!(refused.is_err(), "TLS 1.2 must be refused");
}

#[actix_web::test]
async fn a_key_that_is_not_the_certificates_is_refused_at_startup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let served = pair(dir.path(), "served");
    let other = pair(dir.path(), "other");
    let mut settings = test_settings(&dir);
    settings.tls.cert_path = served.cert_path.clone();
    settings.tls.key_path = other.key_path.clone();
    let error = surge::startup::Application::build(settings)
        .await
        .err()
        .expect("refused");
    let message = format!("{error:#}");
    assert!(
        message.contains("is not the key of the certificate") && message.contains("other.key"),
        "{message}"
    );
    let mut settings = test_settings(&dir);
    settings.tls.cert_path = dir.path().join("missing.crt").display().to_string();
    settings.tls.key_path = served.key_path.clone();
    let error = surge::startup::Application::build(settings)
        .await
        .err()
        .expect("refused");
    assert!(format!("{error:#}").contains("missing.crt"), "{error:#}");
}

#[actix_web::test]
async fn sighup_makes_new_connections_get_the_new_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = pair(dir.path(), "first");
    let port = tls_server(&dir, &first).await;
    let trusts_first = client(&first.cert_pem, &[&rustls::version::TLS13]);
    let open = connect_ready(port, &trusts_first).await;
    // The files are replaced in place, then the signal.
    let second = pair(dir.path(), "second");
    std::fs::copy(&second.cert_path, &first.cert_path).expect("copy cert");
    std::fs::copy(&second.key_path, &first.key_path).expect("copy key");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let trusts_second = client(&second.cert_pem, &[&rustls::version::TLS13]);
    let mut served_second = false;
    for _ in 0..100 {
        if connect(port, &trusts_second).await.is_ok() {
            served_second = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(served_second, "new connections get the new certificate");
    assert!(
        connect(port, &trusts_first).await.is_err(),
        "the old certificate is no longer served"
    );
    // The connection opened before the reload still works.
    let answer = get(open, "/health").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[actix_web::test]
async fn surge_bench_drives_a_tls_server_it_is_told_to_trust() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pair = pair(dir.path(), "bench");
    let port = tls_server(&dir, &pair).await;
    connect_ready(port, &client(&pair.cert_pem, &[&rustls::version::TLS13])).await;
    let out = tempfile::tempdir().expect("temp dir");
    let mut bench = std::process::Command::new(env!("CARGO_BIN_EXE_surge"));
    bench
        .args([
            "bench",
            "payments",
            "--duration-s",
            "2",
            "--concurrency",
            "8",
        ])
        .args(["--url", &format!("https://localhost:{port}")])
        .arg("--ca-cert")
        .arg(&pair.cert_path)
        .arg("--out")
        .arg(out.path())
        .env("SURGE__AUTH__JWT_SECRET", common::app::TEST_SECRET)
        .env("SURGE_ENVIRONMENT", "development");
    // Off the runtime's thread: the server under test runs on it.
    let output = actix_web::rt::task::spawn_blocking(move || bench.output())
        .await
        .expect("joined")
        .expect("surge bench runs");
    assert!(
        output.status.success(),
        "surge bench over TLS failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.path().join("report.json")).expect("report.json"),
    )
    .expect("JSON");
    assert!(report["ok"].as_u64().unwrap_or(0) > 0, "{report}");
}

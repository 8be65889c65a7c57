//! TLS for the HTTP API and the WebSocket feed (rustls, with ring): the
//! certificate chain and key from `tls.cert_path` and `tls.key_path`, TLS 1.3
//! only unless `tls.min_version = "1.2"`. The files are read again on SIGHUP:
//! new handshakes get the new certificate, open connections keep theirs, and a
//! pair that does not read or does not match keeps the one before (logged).

use anyhow::Context as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The TLS settings (`[tls]`): off while `cert_path` is empty.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TlsSettings {
    pub cert_path: String,
    pub key_path: String,
    /// `"1.3"` (the default) or `"1.2"`.
    pub min_version: String,
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        !self.cert_path.is_empty() || !self.key_path.is_empty()
    }

    /// The protocol versions served, newest first.
    fn versions(&self) -> anyhow::Result<&'static [&'static rustls::SupportedProtocolVersion]> {
        static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        static TLS13_AND_12: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        match self.min_version.as_str() {
            "1.3" => Ok(&TLS13_ONLY),
            "1.2" => Ok(&TLS13_AND_12),
            other => anyhow::bail!("tls.min_version must be \"1.3\" or \"1.2\", not {other:?}"),
        }
    }
}

/// The certificate served, swapped whole on a reload.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    /// Reads the pair now: a missing file, a file without a certificate or key,
    /// or a key that is not the certificate's is an error naming the file.
    pub fn open(settings: &TlsSettings, provider: Arc<CryptoProvider>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !settings.cert_path.is_empty() && !settings.key_path.is_empty(),
            "TLS needs both tls.cert_path and tls.key_path"
        );
        let (cert_path, key_path) = (
            PathBuf::from(&settings.cert_path),
            PathBuf::from(&settings.key_path),
        );
        let current = load(&cert_path, &key_path, &provider)?;
        Ok(Self {
            cert_path,
            key_path,
            provider,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads the files again; on any error the certificate served stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = load(&self.cert_path, &self.key_path, &self.provider)?;
        *self.current.write().expect("certificate lock") = Arc::new(fresh);
        Ok(())
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate lock").clone())
    }
}

fn load(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("reading the certificate {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading the certificate {}", cert_path.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "the certificate file {} holds no CERTIFICATE block",
        cert_path.display()
    );
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("reading the private key {}", key_path.display()))?;
    CertifiedKey::from_der(chain, key, provider).with_context(|| {
        format!(
            "the private key {} is not the key of the certificate {} (or not a key rustls signs with)",
            key_path.display(),
            cert_path.display()
        )
    })
}

/// The server's TLS configuration, and the certificate it serves (to reload).
pub fn server_config(settings: &TlsSettings) -> anyhow::Result<(ServerConfig, Arc<ReloadingCert>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = Arc::new(ReloadingCert::open(settings, provider.clone())?);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(settings.versions()?)
        .context("the TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(cert.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, cert))
}

/// Reloads `cert` on every SIGHUP, for as long as the process runs.
pub fn reload_on_sighup(cert: Arc<ReloadingCert>) -> anyhow::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("listening for SIGHUP")?;
    actix_web::rt::spawn(async move {
        while hangups.recv().await.is_some() {
            match cert.reload() {
                Ok(()) => tracing::info!("TLS certificate re-read (SIGHUP)"),
                Err(error) => tracing::error!(
                    error = %format!("{error:#}"),
                    "TLS certificate not re-read; still serving the one before"
                ),
            }
        }
    });
    Ok(())
}

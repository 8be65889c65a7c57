//! Public keys for JWT verification: RS256, ES256 and EdDSA keys from a PEM file
//! (`auth.public_key_path`, one or more `PUBLIC KEY` blocks) and from a JWKS file
//! (`auth.jwks_path`, keys chosen by `kid`), re-read when either file changes so
//! that keys rotate without a restart: publish the new key beside the old one,
//! switch the issuer to it, and drop the old one once its tokens have expired.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// How often, at most, the key files' modification times are looked at (on a
/// request's path: one `stat` per file per interval).
pub const KEY_FILES_CHECK_EVERY_MS: u64 = 1_000;

/// The algorithms a public key may verify. HS256 is the shared secret's, and
/// is decided elsewhere (`auth.allow_hs256`).
pub const PUBLIC_KEY_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// One verification key: its `kid` (a JWKS entry's; none for a PEM block), the
/// one algorithm it verifies, and the key.
#[derive(Clone)]
pub struct PublicKey {
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// The keys as last read, and what the files looked like then.
struct Loaded {
    keys: Arc<Vec<PublicKey>>,
    stamps: Vec<Option<(SystemTime, u64)>>,
}

/// The configured key files and the keys read from them.
pub struct PublicKeys {
    files: Vec<(PathBuf, KeyFile)>,
    loaded: RwLock<Loaded>,
    checked_at_ms: AtomicU64,
    /// Bumped on every reload, so that tokens verified with keys since
    /// removed are checked again (see `AuthKeys::verify`).
    generation: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
enum KeyFile {
    Pem,
    Jwks,
}

impl PublicKeys {
    /// Reads the files; an unreadable file or a key of an unsupported kind is a
    /// startup error naming the file. `None` when neither is configured.
    pub fn open(pem: Option<&Path>, jwks: Option<&Path>) -> anyhow::Result<Option<Self>> {
        let files: Vec<(PathBuf, KeyFile)> = [(pem, KeyFile::Pem), (jwks, KeyFile::Jwks)]
            .into_iter()
            .filter_map(|(path, kind)| path.map(|p| (p.to_path_buf(), kind)))
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        let (keys, stamps) = read_all(&files)?;
        anyhow::ensure!(
            !keys.is_empty(),
            "auth.public_key_path / auth.jwks_path hold no key"
        );
        Ok(Some(Self {
            files,
            loaded: RwLock::new(Loaded {
                keys: Arc::new(keys),
                stamps,
            }),
            checked_at_ms: AtomicU64::new(now_ms()),
            generation: AtomicU64::new(0),
        }))
    }

    /// The keys now, after re-reading the files if they changed since the last
    /// look (at most every `KEY_FILES_CHECK_EVERY_MS`). A file that no longer
    /// reads (half written, say) keeps the keys it had, and says so in the log.
    pub fn current(&self) -> Arc<Vec<PublicKey>> {
        let now = now_ms();
        let checked = self.checked_at_ms.load(Ordering::Relaxed);
        if now.saturating_sub(checked) >= KEY_FILES_CHECK_EVERY_MS
            && self
                .checked_at_ms
                .compare_exchange(checked, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.reload_if_changed();
        }
        self.loaded.read().expect("keys lock").keys.clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn reload_if_changed(&self) {
        let stamps: Vec<_> = self.files.iter().map(|(path, _)| stamp(path)).collect();
        if self.loaded.read().expect("keys lock").stamps == stamps {
            return;
        }
        match read_all(&self.files) {
            Ok((keys, stamps)) if !keys.is_empty() => {
                tracing::info!(keys = keys.len(), "JWT verification keys re-read");
                let mut loaded = self.loaded.write().expect("keys lock");
                *loaded = Loaded {
                    keys: Arc::new(keys),
                    stamps,
                };
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Ok(_) => {
                tracing::error!("the JWT key files now hold no key; keeping the keys read before")
            }
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "the JWT key files no longer read; keeping the keys read before")
            }
        }
    }
}

type Stamps = Vec<Option<(SystemTime, u64)>>;

fn read_all(files: &[(PathBuf, KeyFile)]) -> anyhow::Result<(Vec<PublicKey>, Stamps)> {
    use anyhow::Context as _;
    let mut keys = Vec::new();
    let mut stamps = Vec::new();
    for (path, kind) in files {
        stamps.push(stamp(path));
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the JWT key file {}", path.display()))?;
        let read = match kind {
            KeyFile::Pem => pem_keys(&text),
            KeyFile::Jwks => jwks_keys(&text),
        };
        keys.extend(read.with_context(|| format!("the JWT key file {}", path.display()))?);
    }
    Ok((keys, stamps))
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Every `PUBLIC KEY` block of a PEM file: RSA (RS256), P-256 (ES256) or
/// Ed25519 (EdDSA), told apart by the key's own algorithm identifier.
pub fn pem_keys(text: &str) -> anyhow::Result<Vec<PublicKey>> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start..];
        let end = after
            .find(END)
            .ok_or_else(|| anyhow::anyhow!("a PUBLIC KEY block has no end line"))?
            + END.len();
        let block = &after.as_bytes()[..end];
        let (algorithm, key) = if let Ok(key) = DecodingKey::from_rsa_pem(block) {
            (Algorithm::RS256, key)
        } else if let Ok(key) = DecodingKey::from_ec_pem(block) {
            (Algorithm::ES256, key)
        } else if let Ok(key) = DecodingKey::from_ed_pem(block) {
            (Algorithm::EdDSA, key)
        } else {
            anyhow::bail!(
                "public key {} is not an RSA, P-256 or Ed25519 key",
                keys.len() + 1
            );
        };
        keys.push(PublicKey {
            kid: None,
            algorithm,
            key,
        });
        rest = &after[end..];
    }
    anyhow::ensure!(
        !keys.is_empty(),
        "no '{BEGIN}' block (a private key or a certificate is not a public key)"
    );
    Ok(keys)
}

/// The signing keys of a JWKS document, each with its `kid`. A key's algorithm
/// is its `alg`, or follows from its type (RSA: RS256, P-256: ES256, Ed25519:
/// EdDSA); keys for anything else, or marked for encryption, are refused.
pub fn jwks_keys(text: &str) -> anyhow::Result<Vec<PublicKey>> {
    let set: JwkSet = serde_json::from_str(text)?;
    let mut keys = Vec::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        let kid = jwk.common.key_id.clone().ok_or_else(|| {
            anyhow::anyhow!("key {} has no kid: keys are chosen by kid", index + 1)
        })?;
        anyhow::ensure!(
            !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)),
            "key {kid:?} is for encryption, not for signatures"
        );
        let by_type = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
            AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => {
                Some(Algorithm::ES256)
            }
            AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {
                Some(Algorithm::EdDSA)
            }
            _ => None,
        };
        let declared = match jwk.common.key_algorithm {
            None => by_type,
            Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
            Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
            Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
            Some(_) => None,
        };
        let algorithm = match (declared, by_type) {
            (Some(declared), Some(by_type)) if declared == by_type => declared,
            _ => anyhow::bail!(
                "key {kid:?} is not an RS256, ES256 or EdDSA signing key (or its alg does not \
                 fit its type)"
            ),
        };
        let key =
            DecodingKey::from_jwk(jwk).map_err(|error| anyhow::anyhow!("key {kid:?}: {error}"))?;
        keys.push(PublicKey {
            kid: Some(kid),
            algorithm,
            key,
        });
    }
    Ok(keys)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

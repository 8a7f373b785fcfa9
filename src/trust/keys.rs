//! Ed25519 signing keys in the formats people already have: PKCS#8 PEM for secret keys and
//! SPKI PEM for public keys, exactly what `openssl genpkey -algorithm ed25519` and
//! `openssl pkey -pubout` write.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::SubjectPublicKeyInfoRef;
use ed25519_dalek::pkcs8::spki::der::pem::{self, LineEnding};
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, ObjectIdentifier,
    PrivateKeyInfo,
};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::fs::{self, FileMode};

const PUBLIC_LABEL: &str = "PUBLIC KEY";
const SECRET_LABEL: &str = "PRIVATE KEY";
const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// What kind of problem a key had, for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyErrorKind {
    /// The key file could not be read or written.
    Io,
    /// The file is not PEM text at all.
    NotPem,
    /// The PEM label is not one of a key of the expected kind.
    WrongLabel,
    /// A secret key was given where a public key belongs, or the reverse.
    WrongKind,
    /// The key is of another algorithm (RSA, ECDSA, X25519, ...).
    NotEd25519,
    /// The PEM or the structure inside it is truncated or damaged.
    Malformed,
    /// An encrypted secret key: decrypt it first.
    Encrypted,
    /// A key file is already there and would be overwritten.
    AlreadyExists,
}

/// A key that could not be read, parsed or written. The message names the file.
///
/// # Example
///
/// ```
/// use wasmpak::{KeyErrorKind, PublicKey};
///
/// let err = PublicKey::from_pem("not a key").unwrap_err();
/// assert_eq!(err.kind(), KeyErrorKind::NotPem);
/// ```
#[derive(Debug)]
pub struct KeyError {
    kind: KeyErrorKind,
    path: Option<PathBuf>,
    detail: String,
    source: Option<std::io::Error>,
}

impl KeyError {
    fn new(kind: KeyErrorKind, detail: impl Into<String>) -> KeyError {
        KeyError {
            kind,
            path: None,
            detail: detail.into(),
            source: None,
        }
    }

    fn io(path: &Path, source: std::io::Error) -> KeyError {
        let kind = if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyErrorKind::AlreadyExists
        } else {
            KeyErrorKind::Io
        };
        KeyError {
            kind,
            path: Some(path.to_path_buf()),
            detail: source.to_string(),
            source: Some(source),
        }
    }

    fn at(mut self, path: &Path) -> KeyError {
        self.path = Some(path.to_path_buf());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> KeyErrorKind {
        self.kind
    }

    /// The key file concerned, if the key came from a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "key file {}: {}", path.display(), self.detail),
            None => write!(f, "invalid key: {}", self.detail),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An Ed25519 public key: what a node trusts, to accept entries a signer vouched for.
///
/// # Example
///
/// ```
/// use wasmpak::{PublicKey, SecretKey};
///
/// let secret = SecretKey::generate()?;
/// let public = secret.public_key();
/// let pem = public.to_pem();
/// assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
/// assert_eq!(PublicKey::from_pem(&pem)?, public);
/// assert_eq!(public.id().len(), 16);
/// # Ok::<(), wasmpak::KeyError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(text: &str) -> Result<PublicKey, KeyError> {
        let (label, der) = decode_pem(text)?;
        match label.as_str() {
            PUBLIC_LABEL => {}
            SECRET_LABEL | ENCRYPTED_LABEL => {
                return Err(KeyError::new(
                    KeyErrorKind::WrongKind,
                    "this is a secret key, where a public key belongs; give the public key \
                     (`wasmpak keygen` writes it to NAME.pub.pem; `openssl pkey -pubout` \
                     derives it) and keep the secret key where it is",
                ));
            }
            other => return Err(wrong_label(other, PUBLIC_LABEL)),
        }
        VerifyingKey::from_public_key_der(&der)
            .map(PublicKey)
            .map_err(|e| {
                let algorithm = SubjectPublicKeyInfoRef::try_from(der.as_slice())
                    .ok()
                    .map(|info| info.algorithm.oid);
                undecodable(algorithm, "public key", e)
            })
    }

    /// Reads an SPKI PEM public key from a file.
    pub fn read(path: impl AsRef<Path>) -> Result<PublicKey, KeyError> {
        read_key(path.as_ref(), PublicKey::from_pem)
    }

    /// Wraps a raw 32-byte Ed25519 public key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::new(KeyErrorKind::Malformed, "not a valid Ed25519 point"))
    }

    /// The raw 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key as SPKI PEM text.
    pub fn to_pem(&self) -> String {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .expect("an Ed25519 public key always encodes")
    }

    /// A short name for the key: 16 hex digits of the BLAKE3 hash of its bytes, shown by
    /// `wasmpak keygen`, `info` and `list`.
    pub fn id(&self) -> String {
        key_id(&self.to_bytes())
    }

    /// Whether `signature` is this key's strict Ed25519 signature of `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.0
            .verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

/// The id of raw public key bytes, valid or not (for displaying what a pack claims).
pub(crate) fn key_id(bytes: &[u8; 32]) -> String {
    blake3::hash(bytes).as_bytes()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// An Ed25519 secret key: what CI signs packs with. Never printed, zeroed when dropped.
///
/// # Example
///
/// ```
/// use wasmpak::SecretKey;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("ci.pem");
/// let key = SecretKey::generate()?;
/// key.write_new(&path)?; // mode 0600, never overwrites
/// assert_eq!(SecretKey::read(&path)?.public_key(), key.public_key());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<SecretKey, KeyError> {
        let mut seed = ed25519_dalek::SecretKey::default();
        getrandom::fill(&mut seed).map_err(|e| {
            KeyError::new(
                KeyErrorKind::Io,
                format!("the system random generator failed: {e}"),
            )
        })?;
        let key = SecretKey(SigningKey::from_bytes(&seed));
        seed.fill(0);
        Ok(key)
    }

    /// Parses a PKCS#8 PEM secret key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(text: &str) -> Result<SecretKey, KeyError> {
        let (label, der) = decode_pem(text)?;
        match label.as_str() {
            SECRET_LABEL => {}
            ENCRYPTED_LABEL => {
                return Err(KeyError::new(
                    KeyErrorKind::Encrypted,
                    "the secret key is encrypted; decrypt it first \
                     (openssl pkey -in KEY -out PLAIN.pem)",
                ));
            }
            PUBLIC_LABEL => {
                return Err(KeyError::new(
                    KeyErrorKind::WrongKind,
                    "this is a public key; signing needs the secret key",
                ));
            }
            other => return Err(wrong_label(other, SECRET_LABEL)),
        }
        SigningKey::from_pkcs8_der(&der)
            .map(SecretKey)
            .map_err(|e| {
                let algorithm = PrivateKeyInfo::try_from(der.as_slice())
                    .ok()
                    .map(|info| info.algorithm.oid);
                undecodable(algorithm, "secret key", e)
            })
    }

    /// Reads a PKCS#8 PEM secret key from a file.
    pub fn read(path: impl AsRef<Path>) -> Result<SecretKey, KeyError> {
        read_key(path.as_ref(), SecretKey::from_pem)
    }

    /// The key as PKCS#8 PEM text: version 1 without the public key, the form
    /// `openssl genpkey` writes and every OpenSSL 3 reads (it refuses ed25519-dalek's default
    /// version 2).
    pub fn to_pem(&self) -> String {
        let bytes = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        };
        bytes
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an Ed25519 secret key always encodes")
            .to_string()
    }

    /// Writes the key to a new file readable by its owner only (mode 0600); fails if the
    /// file exists.
    pub fn write_new(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        let path = path.as_ref();
        write_new(path, self.to_pem().as_bytes(), FileMode::Private)
    }

    /// The public key that verifies this key's signatures.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public_key().id())
    }
}

/// Writes `bytes` to a new file with `mode`, durably (see `crate::fs`); fails if `path`
/// exists.
fn write_new(path: &Path, bytes: &[u8], mode: FileMode) -> Result<(), KeyError> {
    fs::write_new_file(path, bytes, mode).map_err(|e| KeyError::io(path, e))
}

impl PublicKey {
    /// Writes the key to a new file (mode 0644); fails if the file exists.
    pub fn write_new(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        write_new(path.as_ref(), self.to_pem().as_bytes(), FileMode::Public)
    }
}

/// Reads the key file at `path` and parses it with `parse`; errors name the file.
fn read_key<K>(path: &Path, parse: fn(&str) -> Result<K, KeyError>) -> Result<K, KeyError> {
    let bytes = std::fs::read(path).map_err(|e| KeyError::io(path, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| KeyError::new(KeyErrorKind::NotPem, "not a PEM text file"))
        .map_err(|e| e.at(path))?;
    parse(&text).map_err(|e| e.at(path))
}

/// Why DER that failed to decode as an Ed25519 key of `what` kind did: another algorithm
/// (if its `algorithm` could be read), else damage.
fn undecodable(
    algorithm: Option<ObjectIdentifier>,
    what: &str,
    error: impl fmt::Display,
) -> KeyError {
    match algorithm {
        Some(oid) if oid != ed25519_dalek::pkcs8::ALGORITHM_OID => not_ed25519(oid),
        _ => KeyError::new(KeyErrorKind::Malformed, format!("damaged {what}: {error}")),
    }
}

fn decode_pem(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with("-----BEGIN ") {
        return Err(KeyError::new(
            KeyErrorKind::NotPem,
            "not a PEM key (expected a line -----BEGIN PUBLIC KEY----- or -----BEGIN PRIVATE \
             KEY-----)",
        ));
    }
    let label = pem::decode_label(trimmed.as_bytes())
        .map_err(|e| {
            KeyError::new(
                KeyErrorKind::Malformed,
                format!("truncated or damaged PEM: {e}"),
            )
        })?
        .to_string();
    let (_, der) = pem::decode_vec(trimmed.as_bytes()).map_err(|e| {
        KeyError::new(
            KeyErrorKind::Malformed,
            format!("truncated or damaged PEM ({label}): {e}"),
        )
    })?;
    Ok((label, der))
}

fn wrong_label(found: &str, expected: &str) -> KeyError {
    KeyError::new(
        KeyErrorKind::WrongLabel,
        format!(
            "PEM label {found:?} is not an Ed25519 key in the expected format \
             ({expected:?}); convert it with openssl pkey"
        ),
    )
}

fn not_ed25519(oid: ObjectIdentifier) -> KeyError {
    let name = match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "an RSA key",
        "1.2.840.10045.2.1" => "an elliptic-curve (ECDSA) key",
        "1.3.101.110" => "an X25519 key",
        "1.3.101.113" => "an Ed448 key",
        _ => "a key of another algorithm",
    };
    KeyError::new(
        KeyErrorKind::NotEd25519,
        format!(
            "{name} (algorithm {oid}); wasmpak signs with Ed25519 \
             (wasmpak keygen, or openssl genpkey -algorithm ed25519)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem_and_sign() {
        let secret = SecretKey::generate().unwrap();
        let again = SecretKey::from_pem(&secret.to_pem()).unwrap();
        assert_eq!(again.public_key(), secret.public_key());
        let public = PublicKey::from_pem(&secret.public_key().to_pem()).unwrap();
        let signature = secret.sign(b"statement");
        assert!(public.verifies(b"statement", &signature));
        assert!(!public.verifies(b"statement!", &signature));
        let other = SecretKey::generate().unwrap().public_key();
        assert!(!other.verifies(b"statement", &signature));
        assert!(!format!("{secret:?}").contains(&secret.to_pem()[30..60]));
    }

    #[test]
    fn wrong_keys_are_classified() {
        let secret = SecretKey::generate().unwrap();
        let secret_pem = secret.to_pem();
        let public_pem = secret.public_key().to_pem();
        let kind = |r: Result<PublicKey, KeyError>| r.unwrap_err().kind();
        assert_eq!(
            kind(PublicKey::from_pem(&secret_pem)),
            KeyErrorKind::WrongKind
        );
        assert_eq!(
            SecretKey::from_pem(&public_pem).unwrap_err().kind(),
            KeyErrorKind::WrongKind
        );
        assert_eq!(kind(PublicKey::from_pem("")), KeyErrorKind::NotPem);
        assert_eq!(
            kind(PublicKey::from_pem("ssh-ed25519 AAAA")),
            KeyErrorKind::NotPem
        );
        let relabeled = public_pem.replace("PUBLIC KEY", "CERTIFICATE");
        assert_eq!(
            kind(PublicKey::from_pem(&relabeled)),
            KeyErrorKind::WrongLabel
        );
        for cut in [30, public_pem.len() / 2, public_pem.len() - 20] {
            let err = PublicKey::from_pem(&public_pem[..cut]).unwrap_err();
            assert_eq!(err.kind(), KeyErrorKind::Malformed, "cut {cut}: {err}");
        }
        // An X25519 SPKI key: right label, wrong algorithm.
        let x25519 = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VuAyEAAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\
            -----END PUBLIC KEY-----\n";
        let err = PublicKey::from_pem(x25519).unwrap_err();
        assert_eq!(err.kind(), KeyErrorKind::NotEd25519, "{err}");
        assert!(err.to_string().contains("X25519"), "{err}");
    }

    #[test]
    fn errors_name_the_file_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.pub.pem");
        std::fs::write(&path, SecretKey::generate().unwrap().to_pem()).unwrap();
        let err = PublicKey::read(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("key file ") && text.contains("node.pub.pem"),
            "{text}"
        );
        assert!(!text.contains('\n'));
        let missing = PublicKey::read(dir.path().join("nope.pem")).unwrap_err();
        assert_eq!(missing.kind(), KeyErrorKind::Io);
        assert!(std::error::Error::source(&missing).is_some());
    }
}

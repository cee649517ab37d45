//! The server's RSA key pair: loading, first-start generation, and matching a
//! client-submitted public key against ours.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};

use super::LocalApiError;
use crate::public_key::{self, PublicKeyError};

pub(crate) const PRIVATE_KEY_FILE: &str = "jwt_private_key.pem";
pub(crate) const PUBLIC_KEY_FILE: &str = "jwt_public_key.pem";
const KEY_BITS: usize = 2048;

/// The key material in the forms the server needs at run time.
pub(crate) struct KeyPair {
    pub(crate) public: RsaPublicKey,
    pub(crate) public_pem: String,
    pub(crate) encoding: jsonwebtoken::EncodingKey,
    pub(crate) decoding: jsonwebtoken::DecodingKey,
}

/// Loads the pair from `dir`, generating it on first start. The private key
/// is the source of truth: a missing or stale public key file is rewritten
/// from it, so clients reading that file always get a key that works.
pub(crate) fn load_or_generate(dir: &Path) -> Result<KeyPair, LocalApiError> {
    private_dir(dir)?;
    let private_path = dir.join(PRIVATE_KEY_FILE);
    let private = if private_path.exists() {
        read_private_key(&private_path)?
    } else {
        let key = generate()?;
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| LocalApiError::KeyEncode(e.to_string()))?;
        write_atomically(&private_path, pem.as_bytes(), 0o600)?;
        tracing::info!(path = %private_path.display(), "generated a new RSA-{KEY_BITS} key pair");
        key
    };
    let public = private.to_public_key();
    let public_pem = public
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| LocalApiError::KeyEncode(e.to_string()))?;
    sync_public_key_file(&dir.join(PUBLIC_KEY_FILE), &public, &public_pem)?;
    Ok(KeyPair {
        encoding: encoding_key(&private)?,
        decoding: decoding_key(&public)?,
        public,
        public_pem,
    })
}

/// Whoever reads the public key gets a token, and the private key mints
/// them: both live 0600 in a directory only its owner may enter. An
/// existing directory of ours that others may enter is tightened; one
/// that is not ours to tighten (a shared /tmp) is refused.
fn private_dir(dir: &Path) -> Result<(), LocalApiError> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| io_error(dir, e))?;
    let meta = fs::metadata(dir).map_err(|e| io_error(dir, e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    let ours = meta.uid() == unsafe { libc::geteuid() };
    if !ours || mode & 0o1000 != 0 {
        return Err(LocalApiError::KeyDirShared { path: dir.to_owned(), mode });
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| io_error(dir, e))?;
    tracing::warn!(path = %dir.display(), "key directory was mode {mode:04o}; now 0700");
    Ok(())
}

/// A private key others could have read is refused, not silently fixed:
/// whoever read it can mint tokens until the pair is replaced.
fn check_private_mode(path: &Path) -> Result<(), LocalApiError> {
    let mode = fs::metadata(path).map_err(|e| io_error(path, e))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(LocalApiError::KeyExposed { path: path.to_owned(), mode });
    }
    Ok(())
}

fn generate() -> Result<RsaPrivateKey, LocalApiError> {
    RsaPrivateKey::new(&mut rand::thread_rng(), KEY_BITS).map_err(LocalApiError::KeyGeneration)
}

/// Accepts PKCS#8 (what we write) and PKCS#1 (what `openssl genrsa` and the
/// real server's deployment scripts produce), so an operator can drop in the
/// cluster's key files.
fn read_private_key(path: &Path) -> Result<RsaPrivateKey, LocalApiError> {
    check_private_mode(path)?;
    let text = fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    RsaPrivateKey::from_pkcs8_pem(&text)
        .or_else(|pkcs8_err| {
            RsaPrivateKey::from_pkcs1_pem(&text)
                .map_err(|pkcs1_err| format!("not PKCS#8 ({pkcs8_err}) nor PKCS#1 ({pkcs1_err})"))
        })
        .map_err(|detail| LocalApiError::KeyParse { path: path.to_owned(), detail })
}

fn sync_public_key_file(
    path: &Path,
    public: &RsaPublicKey,
    pem: &str,
) -> Result<(), LocalApiError> {
    let current = match fs::read_to_string(path) {
        Ok(text) => public_key::parse_pem(&text).ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(path, e)),
    };
    if current.as_ref() == Some(public) {
        let perms = fs::Permissions::from_mode(0o600);
        return fs::set_permissions(path, perms).map_err(|e| io_error(path, e));
    }
    if path.exists() {
        tracing::warn!(path = %path.display(), "public key file does not match the private key; rewriting it");
    }
    write_atomically(path, pem.as_bytes(), 0o600)
}

/// Write-then-rename so a crash never leaves a truncated key behind; the
/// mode is set at creation so a key is never briefly readable.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), LocalApiError> {
    let tmp = tmp_path(path);
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io_error(&tmp, e))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(|e| io_error(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_error(path, e))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

// jsonwebtoken's signer (ring) wants PKCS#1 DER; handing it DER directly
// avoids depending on its PEM sniffing.
fn encoding_key(private: &RsaPrivateKey) -> Result<jsonwebtoken::EncodingKey, LocalApiError> {
    let der = private.to_pkcs1_der().map_err(|e| LocalApiError::KeyEncode(e.to_string()))?;
    Ok(jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()))
}

fn decoding_key(public: &RsaPublicKey) -> Result<jsonwebtoken::DecodingKey, LocalApiError> {
    let der = public.to_pkcs1_der().map_err(|e| LocalApiError::KeyEncode(e.to_string()))?;
    Ok(jsonwebtoken::DecodingKey::from_rsa_der(der.as_bytes()))
}

/// Why a submitted public key was refused; the text goes to the client after
/// "Public key verification failed: ".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum KeyCheckError {
    #[error(transparent)]
    Parse(#[from] PublicKeyError),
    #[error("public key does not match the server's key")]
    Mismatch,
}

fn io_error(path: &Path, source: std::io::Error) -> LocalApiError {
    LocalApiError::Io { path: path.to_owned(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_path_is_a_sibling() {
        assert_eq!(tmp_path(Path::new("/a/b/key.pem")), PathBuf::from("/a/b/key.pem.tmp"));
    }
}

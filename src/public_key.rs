//! The one parser of RSA public keys in PEM form, shared by the daemon
//! (checking the key it will trade for a token) and the local API (checking
//! the key a client submits), so both accept exactly the same files.

use base64::Engine;
use rsa::pkcs8::DecodePublicKey;
use rsa::RsaPublicKey;
use std::path::Path;

/// Why a text is not an RSA public key. The local API sends this text to the
/// client after "Public key verification failed: ", in the real server's
/// words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublicKeyError {
    #[error("failed to decode PEM block containing public key")]
    NoPemBlock,
    #[error("failed to parse public key: {0}")]
    NotRsaSpki(String),
    #[error("key is not an RSA public key")]
    NotRsa,
}

/// Parses an RSA SubjectPublicKeyInfo PEM as leniently as Go's `pem.Decode`
/// followed by `x509.ParsePKIXPublicKey` (what the Gthulhu API server runs):
/// text around the block, CRLF, odd line widths and the block label are not
/// checked; only the DER counts.
pub fn parse_pem(text: &str) -> Result<RsaPublicKey, PublicKeyError> {
    let der = pem_block_contents(text).ok_or(PublicKeyError::NoPemBlock)?;
    RsaPublicKey::from_public_key_der(&der).map_err(|e| match e {
        // The SPKI parsed but names another algorithm (EC, Ed25519, ...);
        // the error's OID is the one expected, which would only confuse.
        rsa::pkcs8::spki::Error::OidUnknown { .. } => PublicKeyError::NotRsa,
        other => PublicKeyError::NotRsaSpki(other.to_string()),
    })
}

/// Reads a PEM public key file the API server would parse: its text (what
/// goes into the token request) and the key (what checks the token).
pub fn read_pem_file(path: &Path) -> Result<(String, RsaPublicKey), String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = parse_pem(&pem)
        .map_err(|e| format!("{}: not an RSA public key in PEM form: {e}", path.display()))?;
    Ok((pem, key))
}

fn pem_block_contents(text: &str) -> Option<Vec<u8>> {
    let after_begin = &text[text.find("-----BEGIN ")? + "-----BEGIN ".len()..];
    let body_start = after_begin.find("-----")? + "-----".len();
    let body = &after_begin[body_start..];
    let body = &body[..body.find("-----END ")?];
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::RsaPrivateKey;

    fn small_key() -> RsaPublicKey {
        RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap().to_public_key()
    }

    #[test]
    fn parses_own_encoding_and_mangled_whitespace() {
        let key = small_key();
        let pem = key.to_public_key_pem(LineEnding::LF).unwrap();
        assert_eq!(parse_pem(&pem).unwrap(), key);
        let crlf = format!("junk before\r\n  {}\r\n", pem.replace('\n', "\r\n"));
        assert_eq!(parse_pem(&crlf).unwrap(), key);
        let one_line: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let rewrapped = format!("-----BEGIN PUBLIC KEY-----\n{one_line}\n-----END PUBLIC KEY-----");
        assert_eq!(parse_pem(&rewrapped).unwrap(), key);
    }

    #[test]
    fn refuses_non_pem_non_spki_and_non_rsa() {
        assert_eq!(parse_pem("hello"), Err(PublicKeyError::NoPemBlock));
        let pkcs1 = small_key().to_pkcs1_pem(LineEnding::LF).unwrap();
        assert!(matches!(parse_pem(&pkcs1), Err(PublicKeyError::NotRsaSpki(_))));
        let ec = include_str!("../tests/fixtures/ec_public_key.pem");
        assert_eq!(parse_pem(ec), Err(PublicKeyError::NotRsa));
    }

    #[test]
    fn a_file_that_only_looks_like_a_key_is_named_and_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n")
            .unwrap();
        let err = read_pem_file(f.path()).unwrap_err();
        assert!(err.contains(&f.path().display().to_string()) && err.contains("RSA"), "{err}");
        let good = include_str!("../tests/fixtures/other_public_key.pem");
        std::fs::write(f.path(), good).unwrap();
        assert_eq!(read_pem_file(f.path()).unwrap().0, good);
    }
}

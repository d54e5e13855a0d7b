//! Grid credentials, found where the grid tools look for them, read again at every use so a
//! renewed credential (htgettoken, a credential monitor, voms-proxy-init) takes effect at once:
//! bearer tokens by WLCG Bearer Token Discovery (`BEARER_TOKEN`, `BEARER_TOKEN_FILE`,
//! `$XDG_RUNTIME_DIR/bt_u<uid>`, `/tmp/bt_u<uid>`), X.509 proxies (`X509_USER_PROXY`,
//! `/tmp/x509up_u<uid>`), user certificates (`X509_USER_CERT`/`X509_USER_KEY`,
//! `~/.globus/usercert.pem`/`userkey.pem`) and the CA directory (`X509_CERT_DIR`,
//! `/etc/grid-security/certificates`). Also the TLS set-up for ureq built from them.

use std::path::{Path, PathBuf};

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// Where grid hosts keep the IGTF CAs.
const GRID_CA_DIR: &str = "/etc/grid-security/certificates";

/// The user id of this process (the owner of /proc/self), for the `_u<uid>` file names.
fn uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The bearer token, by WLCG Bearer Token Discovery: the `BEARER_TOKEN` variable, else the
/// file `BEARER_TOKEN_FILE` names, else `$XDG_RUNTIME_DIR/bt_u<uid>`, else `/tmp/bt_u<uid>`.
/// `None` when none holds a token; surrounding white space is removed.
pub fn bearer_token() -> Option<String> {
    let trimmed = |text: String| Some(text.trim().to_string()).filter(|t| !t.is_empty());
    if let Ok(token) = std::env::var("BEARER_TOKEN") {
        return trimmed(token);
    }
    if let Some(file) = std::env::var_os("BEARER_TOKEN_FILE") {
        return std::fs::read_to_string(file).ok().and_then(trimmed);
    }
    let name = format!("bt_u{}", uid()?);
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(|d| Path::new(&d).join(&name));
    runtime
        .into_iter()
        .chain([Path::new("/tmp").join(&name)])
        .find_map(|file| std::fs::read_to_string(file).ok().and_then(trimmed))
}

/// The X.509 proxy file (certificate chain and key in one PEM file): `X509_USER_PROXY`, else
/// `/tmp/x509up_u<uid>` when it exists.
pub fn x509_proxy() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("X509_USER_PROXY") {
        return Some(file.into());
    }
    let default = PathBuf::from(format!("/tmp/x509up_u{}", uid()?));
    default.is_file().then_some(default)
}

/// The user certificate and key: `X509_USER_CERT` and `X509_USER_KEY`, else
/// `~/.globus/usercert.pem` and `~/.globus/userkey.pem`.
pub fn x509_user_certificate() -> (PathBuf, PathBuf) {
    let globus = || Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".globus");
    let cert = std::env::var_os("X509_USER_CERT").map_or(globus().join("usercert.pem"), Into::into);
    let key = std::env::var_os("X509_USER_KEY").map_or(globus().join("userkey.pem"), Into::into);
    (cert, key)
}

/// The CA directory: `X509_CERT_DIR`, else /etc/grid-security/certificates when the host has
/// it; `None`: the system's usual roots.
pub fn ca_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("X509_CERT_DIR") {
        return Some(dir.into());
    }
    Path::new(GRID_CA_DIR).is_dir().then(|| GRID_CA_DIR.into())
}

/// Why a credential could not be used.
pub fn unusable(path: &Path, reason: impl std::fmt::Display) -> String {
    format!("{}: {reason}", path.display())
}

/// The certificates of a CA directory: every PEM certificate in its `*.pem`, `*.crt` and
/// hash-named (`<8 hex>.<n>`) files; other files (signing policies, CRLs) are passed over.
fn ca_certificates(dir: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| unusable(dir, e))?;
    let mut certificates = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let hashed = name.split_once('.').is_some_and(|(hash, n)| {
            hash.len() == 8
                && hash.chars().all(|c| c.is_ascii_hexdigit())
                && n.chars().all(|c| c.is_ascii_digit())
        });
        if !(hashed || name.ends_with(".pem") || name.ends_with(".crt")) {
            continue;
        }
        let Ok(pem) = std::fs::read(entry.path()) else { continue };
        for item in ureq::tls::parse_pem(&pem).flatten() {
            if let PemItem::Certificate(certificate) = item {
                certificates.push(certificate.to_owned());
            }
        }
    }
    if certificates.is_empty() {
        return Err(unusable(dir, "no CA certificates in this directory"));
    }
    Ok(certificates)
}

/// TLS for ureq: the CA directory's certificates as the only roots when there is one (as the
/// grid clients trust), else the usual roots. (Client certificates are presented by curl, not
/// by ureq: rustls refuses to load RFC 3820 proxy certificates.)
pub fn tls_config() -> Result<TlsConfig, String> {
    let mut builder = TlsConfig::builder();
    if let Some(dir) = ca_dir() {
        builder = builder.root_certs(RootCerts::new_with_certs(&ca_certificates(&dir)?));
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_directory_without_certificates_is_refused_with_its_name() {
        let dir = std::env::temp_dir().join(format!("larmon-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("abcdef01.signing_policy"), "access_id_CA X509 '/CN=x'").unwrap();
        let error = ca_certificates(&dir).unwrap_err();
        assert!(error.contains("no CA certificates") && error.contains("larmon-ca-"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

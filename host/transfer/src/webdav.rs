//! HTTPS/WebDAV storage (`https://`, `davs://`, `http://` URLs), as dCache, EOS, StoRM and
//! XRootD's XrdHttp serve it at the labs: `PUT` writes, the *server* computes the adler32
//! (RFC 3230: `HEAD` with `Want-Digest: adler32`, answered in `Digest: adler32=<hex>`, so the
//! bytes are checked where they landed), WebDAV `MOVE` publishes, `MKCOL` makes missing
//! directories. The requests are made by `curl` ([`curl::request`]), present on every host (as
//! `xrdcp` is for root://): unlike ureq it sends header names as servers such as XrdHttp 5.5
//! expect (`Content-Length`), it trusts the system's CAs plus the grid CAs (`X509_CERT_DIR`,
//! /etc/grid-security/certificates), and presents an X.509 proxy (`X509_USER_PROXY`,
//! /tmp/x509up_u<uid>). A bearer token is sent when WLCG Bearer Token Discovery finds one
//! ([`crate::credentials::bearer_token`]), read again for every request so a renewed token is
//! used at once, and passed to curl on its standard input, never on its command line.

use std::path::Path;

use larmon_catalog::Adler32;

use crate::TransferError;
use crate::curl::{self, Credential, Upload};

/// Seconds a request may take in all (a multi-GB PUT over a slow link included).
const REQUEST_TIMEOUT_S: &str = "3600";

/// The URL in the form HTTP clients use: `davs://` → `https://`, `dav://` → `http://`;
/// `None` for anything that is not HTTP storage or has no host.
pub fn http_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" | "davs" => "https",
        "http" | "dav" => "http",
        _ => return None,
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || rest.contains(char::is_whitespace) {
        return None;
    }
    Some(format!("{scheme}://{rest}"))
}

/// `scheme://host[:port]` of an HTTP URL.
pub fn server_of(url: &str) -> Option<String> {
    let url = http_url(url)?;
    let (scheme, rest) = url.split_once("://")?;
    Some(format!("{scheme}://{}", rest.split('/').next()?))
}

/// The adler32 in a `Digest` header (`adler32=084b021f`, possibly among other digests).
pub fn adler32_of_digest(header: &str) -> Option<Adler32> {
    header.split(',').find_map(|part| {
        let (algorithm, value) = part.trim().split_once('=')?;
        if algorithm.trim().eq_ignore_ascii_case("adler32") {
            // Some servers send fewer than 8 digits (no leading zeros).
            let value = value.trim().trim_matches('"');
            let number = u32::from_str_radix(value, 16).ok()?;
            Adler32::parse(&format!("{number:08x}"))
        } else {
            None
        }
    })
}

fn parse(url: &str) -> Result<String, TransferError> {
    http_url(url).ok_or_else(|| TransferError::Command {
        command: "webdav".into(),
        reason: format!("{url:?} is not an https://, davs:// or http:// URL with a host"),
    })
}

/// One request through curl with the credentials the environment holds (a bearer token, an
/// X.509 proxy), as storage expects them.
fn request(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Upload<'_>,
) -> Result<(u16, Vec<(String, String)>), TransferError> {
    curl::request(method, url, headers, body, Credential::Discovered, REQUEST_TIMEOUT_S)
}

fn status_error(method: &str, url: &str, status: u16) -> TransferError {
    let hint = match status {
        401 | 403 => {
            ": no or a refused credential (BEARER_TOKEN, BEARER_TOKEN_FILE, X509_USER_PROXY)"
        }
        _ => "",
    };
    TransferError::Command {
        command: format!("HTTP {method} {url}"),
        reason: format!("status {status}{hint}"),
    }
}

/// The adler32 the server computes for `url`, `None` if there is no such file.
pub fn checksum(url: &str) -> Result<Option<Adler32>, TransferError> {
    let url = parse(url)?;
    let (status, headers) =
        request("HEAD", &url, &[("Want-Digest", "adler32".into())], Upload::None)?;
    match status {
        404 => Ok(None),
        200..=299 => {
            let digest = headers.iter().filter(|(k, _)| k == "digest").map(|(_, v)| v.as_str());
            digest.into_iter().find_map(adler32_of_digest).map(Some).ok_or_else(|| {
                TransferError::Command {
                    command: format!("HTTP HEAD {url} (Want-Digest: adler32)"),
                    reason: "the server sent no adler32 Digest: it must compute adler32 \
                             checksums (XrdHttp: `xrootd.chksum adler32`)"
                        .into(),
                }
            })
        }
        _ => Err(status_error("HEAD", &url, status)),
    }
}

/// Makes every directory above `url` that does not exist (`MKCOL`, 405 = already there).
fn make_parents(url: &str) -> Result<(), TransferError> {
    let server = server_of(url).unwrap_or_default();
    let path = url.strip_prefix(&server).unwrap_or_default();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut dir = server;
    for part in &parts[..parts.len().saturating_sub(1)] {
        dir = format!("{dir}/{part}");
        let (status, _) = request("MKCOL", &format!("{dir}/"), &[], Upload::None)?;
        if !(200..=299).contains(&status) && status != 405 {
            return Err(status_error("MKCOL", &dir, status));
        }
    }
    Ok(())
}

/// Writes a local file to `url` (replacing an old partial copy), making missing directories.
pub fn copy(source: &Path, url: &str) -> Result<(), TransferError> {
    let url = parse(url)?;
    let (mut status, _) = request("PUT", &url, &[], Upload::File(source))?;
    // dCache and others answer 404/409 when the directory is missing: make it, then again.
    if status == 404 || status == 409 {
        make_parents(&url)?;
        (status, _) = request("PUT", &url, &[], Upload::File(source))?;
    }
    if (200..=299).contains(&status) { Ok(()) } else { Err(status_error("PUT", &url, status)) }
}

/// Renames `from` to `to` on the same server (WebDAV MOVE, never over an existing file).
pub fn rename(from: &str, to: &str) -> Result<(), TransferError> {
    let (from, to) = (parse(from)?, parse(to)?);
    if server_of(&from) != server_of(&to) {
        return Err(TransferError::Command {
            command: "HTTP MOVE".into(),
            reason: format!("{from} and {to} are on different servers"),
        });
    }
    let headers = [("Destination", to.clone()), ("Overwrite", "F".into())];
    let (status, _) = request("MOVE", &from, &headers, Upload::None)?;
    if (200..=299).contains(&status) { Ok(()) } else { Err(status_error("MOVE", &to, status)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_digests_as_storage_servers_write_them() {
        assert_eq!(
            http_url("davs://fndca1.fnal.gov:2880/pnfs/x").unwrap(),
            "https://fndca1.fnal.gov:2880/pnfs/x"
        );
        assert_eq!(http_url("http://127.0.0.1:1/a").unwrap(), "http://127.0.0.1:1/a");
        for bad in ["root://h//x", "https://", "https:///x", "file:///x", "https://a b/x"] {
            assert_eq!(http_url(bad), None, "{bad}");
        }
        assert_eq!(server_of("davs://h:2880/a/b").unwrap(), "https://h:2880");
        let expected = Adler32::parse("084b021f");
        assert_eq!(adler32_of_digest("adler32=084b021f"), expected);
        assert_eq!(adler32_of_digest("MD5=abc==, ADLER32=84b021f"), expected, "no leading zero");
        assert_eq!(adler32_of_digest("md5=abc=="), None);
        assert_eq!(adler32_of_digest("adler32=nothex"), None);
    }
}

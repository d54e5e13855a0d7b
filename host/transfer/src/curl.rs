//! HTTP requests through `curl`, for what ureq cannot do here: header names as servers such
//! as XrdHttp 5.5 expect them (`Content-Length`), and client certificates that are RFC 3820
//! proxies (rustls refuses to load them). Used for WebDAV storage and Rucio's X.509 login.

use std::path::Path;

use crate::{TransferError, credentials};

/// Seconds to connect.
const CONNECT_TIMEOUT_S: &str = "30";

/// What a request presents.
pub(crate) enum Credential<'a> {
    /// What the environment holds: an X.509 proxy (`X509_USER_PROXY`, /tmp/x509up_u<uid>) and
    /// a bearer token (WLCG Bearer Token Discovery), each when there is one (storage).
    Discovered,
    /// This certificate and key (the same file for a proxy) and no token (Rucio's X.509 login).
    Certificate {
        /// PEM certificate chain.
        cert: &'a Path,
        /// PEM private key.
        key: &'a Path,
    },
}

/// What a request sends.
pub(crate) enum Upload<'a> {
    /// Nothing.
    None,
    /// A file.
    File(&'a Path),
}

/// One request through `curl` (run directly, no shell): the status and the response headers
/// (names in lower case). Request headers (a token among them) go in on curl's standard input,
/// never on its command line; `credential` says what is presented; the grid CAs are trusted
/// when the host has them; `max_time_s` bounds the whole request.
pub(crate) fn request(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Upload<'_>,
    credential: Credential<'_>,
    max_time_s: &str,
) -> Result<(u16, Vec<(String, String)>), TransferError> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let failed =
        |reason: String| TransferError::Command { command: format!("HTTP {method} {url}"), reason };
    let mut command = Command::new("curl");
    command.args(["--silent", "--show-error", "--globoff", "--dump-header", "-"]);
    command.args(["--output", "/dev/null", "--max-time", max_time_s]);
    command.args(["--connect-timeout", CONNECT_TIMEOUT_S, "--header", "@-"]);
    match (method, body) {
        ("HEAD", _) => {
            command.arg("--head");
        }
        (_, Upload::File(file)) => {
            command.arg("--upload-file").arg(file).args(["--request", method]);
        }
        (_, Upload::None) => {
            command.args(["--request", method]);
        }
    }
    let (certificate, token) = match credential {
        Credential::Discovered => {
            let proxy = credentials::x509_proxy().map(|p| (p.clone(), p));
            (proxy, credentials::bearer_token())
        }
        Credential::Certificate { cert, key } => (Some((cert.into(), key.into())), None),
    };
    if let Some((cert, key)) = &certificate {
        command.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    if let Some(dir) = credentials::ca_dir() {
        command.arg("--capath").arg(dir);
    }
    command.arg(url).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| {
        failed(if e.kind() == std::io::ErrorKind::NotFound {
            "curl not found: install curl".into()
        } else {
            e.to_string()
        })
    })?;
    let mut lines: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    if let Some(token) = token {
        lines.push(format!("Authorization: Bearer {token}"));
    }
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all((lines.join("\n") + "\n").as_bytes());
    }
    let output = child.wait_with_output().map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(failed(format!("curl {}: {}", output.status, stderr.trim())));
    }
    // The last header block counts (a `100 Continue` may come first).
    let text = String::from_utf8_lossy(&output.stdout);
    let block = text.rsplit("\r\n\r\n").find(|b| b.starts_with("HTTP/")).unwrap_or("");
    let mut block_lines = block.lines();
    let status = block_lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| failed(format!("no HTTP status in the answer {:?}", text.trim())))?;
    let headers = block_lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

//! XRootD storage (`root://` URLs) through the xrootd-client tools every grid site has:
//! `xrdcp` writes, the *server* computes the adler32 (`xrdfs … query checksum`, so the bytes
//! are checked where they landed), `xrdfs … mv` publishes. The tools are run directly (no
//! shell), with a timeout so that an unreachable server is an error, not a hang.

use std::path::Path;
use std::process::Command;

use larmon_catalog::Adler32;

use crate::TransferError;

/// Seconds the client tools may wait for the answer to one request before giving up.
const REQUEST_TIMEOUT_S: &str = "300";
/// Seconds of silence on an open connection before it is declared broken.
const STREAM_TIMEOUT_S: &str = "60";

/// A parsed `root://host[:port]//absolute/path` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XRootDUrl {
    /// `host[:port]`.
    pub server: String,
    /// The absolute path on the server.
    pub path: String,
}

impl XRootDUrl {
    /// Parses `root://` or `xroot://` URLs; `None` for anything else or an empty host.
    pub fn parse(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("root://").or_else(|| url.strip_prefix("xroot://"))?;
        let (server, path) = rest.split_once('/')?;
        if server.is_empty() || server.contains(char::is_whitespace) {
            return None;
        }
        let path = path.split('?').next().unwrap_or_default();
        let path = format!("/{}", path.trim_start_matches('/'));
        Some(Self { server: server.to_string(), path })
    }

    /// The URL again, in the `root://server//path` form the tools expect.
    pub fn url(&self) -> String {
        format!("root://{}/{}", self.server, self.path)
    }
}

/// The adler32 the server computes for `url`, `None` if there is no such file.
pub fn checksum(url: &str) -> Result<Option<Adler32>, TransferError> {
    let target = parse(url)?;
    let output = tool("xrdfs", &[&target.server, "query", "checksum", &target.path])?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // kXR_NotFound (3011): nothing at that path. Anything else (no connection, a directory,
        // a server without checksums) must not be taken for "absent".
        if stderr.contains("[3011]") {
            return Ok(None);
        }
        return Err(failed("xrdfs query checksum", url, &output));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    // "adler32 084b021f"
    let mut words = stdout.split_whitespace();
    match (words.next(), words.next().and_then(Adler32::parse)) {
        (Some(kind), Some(adler)) if kind.eq_ignore_ascii_case("adler32") => Ok(Some(adler)),
        _ => Err(TransferError::Command {
            command: format!("xrdfs {} query checksum {}", target.server, target.path),
            reason: format!(
                "no adler32 in the answer {:?}: the server must say `xrootd.chksum adler32`",
                stdout.trim()
            ),
        }),
    }
}

/// Copies a local file to `url` (the server makes the directories; an old partial copy is
/// replaced).
pub fn copy(source: &Path, url: &str) -> Result<(), TransferError> {
    let target = parse(url)?;
    let source = source.to_string_lossy();
    // --posc: a copy that fails midway is removed by the server, not left behind.
    let output =
        tool("xrdcp", &["--force", "--posc", "--silent", "--nopbar", &source, &target.url()])?;
    if output.status.success() { Ok(()) } else { Err(failed("xrdcp", url, &output)) }
}

/// Renames `from` to `to` on the same server.
pub fn rename(from: &str, to: &str) -> Result<(), TransferError> {
    let (from, to) = (parse(from)?, parse(to)?);
    if from.server != to.server {
        return Err(TransferError::Command {
            command: "xrdfs mv".into(),
            reason: format!("{} and {} are on different servers", from.url(), to.url()),
        });
    }
    let output = tool("xrdfs", &[&from.server, "mv", &from.path, &to.path])?;
    if output.status.success() { Ok(()) } else { Err(failed("xrdfs mv", &to.url(), &output)) }
}

fn parse(url: &str) -> Result<XRootDUrl, TransferError> {
    XRootDUrl::parse(url).ok_or_else(|| TransferError::Command {
        command: "xrootd".into(),
        reason: format!("{url:?} is not a root://host[:port]//path URL"),
    })
}

/// Runs an xrootd-client tool with bounded timeouts.
fn tool(program: &str, args: &[&str]) -> Result<std::process::Output, TransferError> {
    Command::new(program)
        .args(args)
        .env("XRD_REQUESTTIMEOUT", REQUEST_TIMEOUT_S)
        // One connection attempt: an unreachable server fails at once and the transfer queue
        // retries with its backoff (the client's own retries would wait minutes silently).
        .env("XRD_CONNECTIONRETRY", "1")
        .env("XRD_STREAMTIMEOUT", STREAM_TIMEOUT_S)
        .output()
        .map_err(|e| TransferError::Command {
            command: program.into(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                format!("{program} not found: install the XRootD client (Debian: xrootd-client)")
            } else {
                e.to_string()
            },
        })
}

fn failed(command: &str, url: &str, output: &std::process::Output) -> TransferError {
    TransferError::Command {
        command: format!("{command} {url}"),
        reason: format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim().chars().take(500).collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_every_form_rucio_and_people_write_them() {
        let rucio = XRootDUrl::parse("root://127.0.0.1:1094//rse/scope/ab/cd/f.h5").unwrap();
        assert_eq!(rucio.server, "127.0.0.1:1094");
        assert_eq!(rucio.path, "/rse/scope/ab/cd/f.h5");
        assert_eq!(rucio.url(), "root://127.0.0.1:1094//rse/scope/ab/cd/f.h5");
        let single = XRootDUrl::parse("xroot://eos.example/dune/x?xrd.wantprot=krb5").unwrap();
        assert_eq!((single.server.as_str(), single.path.as_str()), ("eos.example", "/dune/x"));
        for bad in ["file:///x", "root://", "root:///x", "https://h//x", "root://a b//x"] {
            assert_eq!(XRootDUrl::parse(bad), None, "{bad}");
        }
    }
}

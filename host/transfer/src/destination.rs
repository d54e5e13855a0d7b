//! Where copies go and how they are made safe: the copy is written under a temporary name,
//! its adler32 is measured *at the destination* (read back, not trusted from the copy tool),
//! and only a verified copy is renamed to its final name. A final name that already holds the
//! same bytes is success without copying (idempotent); one with other bytes is never replaced.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use larmon_catalog::Adler32;

use crate::{TransferError, webdav, xrootd};

/// Suffix of a copy not yet verified; never a final name.
pub const PARTIAL_SUFFIX: &str = ".larmon-partial";

/// A destination site.
#[derive(Clone, Debug)]
pub enum Destination {
    /// A local or mounted directory: files go to `<root>/<namespace>/<name>`.
    Directory(PathBuf),
    /// An XRootD server: files go to `<url>/<namespace>/<name>`, `url` being
    /// `root://host[:port]//path`; copied with `xrdcp`, checksummed by the server, renamed with
    /// `xrdfs mv` (see [`crate::xrootd`]).
    XRootD(String),
    /// HTTPS/WebDAV storage: files go to `<url>/<namespace>/<name>`, `url` being
    /// `https://host[:port]/path` (`davs://` is read as `https://`); written with PUT,
    /// checksummed by the server (`Want-Digest: adler32`), renamed with MOVE (see
    /// [`crate::webdav`]).
    Http(String),
    /// Shell command templates for other storage (`{src}`, `{dst}`, `{tmp}` are replaced by
    /// shell-quoted paths): `copy` writes `{src}` to `{tmp}`, `checksum` prints the adler32 of
    /// `{dst}` (first 8-hex-digit word of its output; non-zero exit = absent), `rename` moves
    /// `{tmp}` to `{dst}`. E.g. WebDAV with gfal2: `gfal-copy -f {src} davs://host/{tmp}`,
    /// `gfal-sum davs://host/{dst} ADLER32`, `gfal-rename davs://host/{tmp} davs://host/{dst}`.
    Commands {
        /// Root of the paths on the remote side.
        root: String,
        /// Copy template.
        copy: String,
        /// Checksum template.
        checksum: String,
        /// Rename template.
        rename: String,
    },
}

impl Destination {
    /// The final location of a file.
    pub fn location(&self, namespace: &str, name: &str) -> String {
        match self {
            Self::Directory(root) => root.join(namespace).join(name).to_string_lossy().into_owned(),
            Self::Commands { root, .. } | Self::XRootD(root) | Self::Http(root) => {
                format!("{}/{namespace}/{name}", root.trim_end_matches('/'))
            }
        }
    }

    /// The destination a `--to` argument names: a `root://` URL, an `https://`/`davs://`/
    /// `http://` URL or a directory.
    pub fn parse(to: &str) -> Result<Self, TransferError> {
        if to.starts_with("root://") || to.starts_with("xroot://") {
            let url = xrootd::XRootDUrl::parse(to).ok_or_else(|| TransferError::Command {
                command: "xrootd".into(),
                reason: format!("{to:?} is not a root://host[:port]//path URL"),
            })?;
            return Ok(Self::XRootD(url.url()));
        }
        if let Some(url) = webdav::http_url(to) {
            return Ok(Self::Http(url.trim_end_matches('/').to_string()));
        }
        if let Some((scheme, _)) = to.split_once("://") {
            return Err(TransferError::Command {
                command: "destination".into(),
                reason: format!(
                    "{scheme}:// is not a destination larmon writes to: give a directory, a root:// or https:// (davs://) URL, or command templates"
                ),
            });
        }
        Ok(Self::Directory(to.into()))
    }

    /// The destination and location of a PFN Rucio gives: `file://` (a directory), `root://`,
    /// or `https://`/`davs://`/`http://` (WebDAV).
    pub fn for_pfn(pfn: &str) -> Result<(Self, String), TransferError> {
        if let Some(path) =
            pfn.strip_prefix("file://localhost").or_else(|| pfn.strip_prefix("file://"))
        {
            let parent = Path::new(path).parent().unwrap_or(Path::new("/"));
            return Ok((Self::Directory(parent.into()), path.to_string()));
        }
        if let Some(url) = xrootd::XRootDUrl::parse(pfn) {
            let (server, location) = (format!("root://{}/", url.server), url.url());
            return Ok((Self::XRootD(server), location));
        }
        if let (Some(url), Some(server)) = (webdav::http_url(pfn), webdav::server_of(pfn)) {
            return Ok((Self::Http(server), url));
        }
        Err(TransferError::Rucio {
            action: "placement".into(),
            reason: format!(
                "{pfn}: larmon places files on file://, root:// and https:// (davs://) RSEs; give the RSE one of those protocols"
            ),
        })
    }

    /// The adler32 of what is at `location`, or `None` if nothing is there.
    pub fn checksum(&self, location: &str) -> Result<Option<Adler32>, TransferError> {
        match self {
            Self::Directory(_) => {
                let path = Path::new(location);
                if !path.exists() {
                    return Ok(None);
                }
                let (adler, _) = Adler32::of_file(path).map_err(|e| TransferError::io(path, e))?;
                Ok(Some(adler))
            }
            Self::XRootD(_) => xrootd::checksum(location),
            Self::Http(_) => webdav::checksum(location),
            Self::Commands { checksum, .. } => {
                let output = run(checksum, &[("dst", location)], true)?;
                let Some(output) = output else { return Ok(None) };
                output.split_whitespace().find_map(Adler32::parse).map(Some).ok_or_else(|| {
                    TransferError::Command {
                        command: checksum.clone(),
                        reason: format!("no 8-digit adler32 in its output {output:?}"),
                    }
                })
            }
        }
    }

    /// Copies `source` to the temporary name of `location` and returns that name.
    pub fn copy_to_partial(&self, source: &Path, location: &str) -> Result<String, TransferError> {
        let partial = format!("{location}{PARTIAL_SUFFIX}");
        match self {
            Self::Directory(_) => {
                let path = Path::new(&partial);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| TransferError::io(dir, e))?;
                }
                let mut input =
                    std::fs::File::open(source).map_err(|e| TransferError::io(source, e))?;
                let mut output =
                    std::fs::File::create(path).map_err(|e| TransferError::io(path, e))?;
                std::io::copy(&mut input, &mut output).map_err(|e| TransferError::io(path, e))?;
                output.flush().map_err(|e| TransferError::io(path, e))?;
                output.sync_all().map_err(|e| TransferError::io(path, e))?;
            }
            Self::XRootD(_) => xrootd::copy(source, &partial)?,
            Self::Http(_) => webdav::copy(source, &partial)?,
            Self::Commands { copy, .. } => {
                let source = source.to_string_lossy();
                run(copy, &[("src", &source), ("tmp", &partial)], false)?;
            }
        }
        Ok(partial)
    }

    /// Renames a verified partial copy to its final name.
    pub fn publish(&self, partial: &str, location: &str) -> Result<(), TransferError> {
        match self {
            Self::Directory(_) => {
                let path = Path::new(location);
                std::fs::rename(partial, path).map_err(|e| TransferError::io(path, e))?;
                if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
                    let _ = dir.sync_all(); // the rename itself survives a power cut
                }
                Ok(())
            }
            Self::XRootD(_) => xrootd::rename(partial, location),
            Self::Http(_) => webdav::rename(partial, location),
            Self::Commands { rename, .. } => {
                run(rename, &[("tmp", partial), ("dst", location)], false).map(|_| ())
            }
        }
    }
}

/// Single-quotes a word for `sh`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Runs a template through `sh -c`; `None` when `absent_ok` and it exited non-zero.
fn run(
    template: &str,
    values: &[(&str, &str)],
    absent_ok: bool,
) -> Result<Option<String>, TransferError> {
    let mut command = template.to_string();
    for (key, value) in values {
        command = command.replace(&format!("{{{key}}}"), &shell_quote(value));
    }
    let output =
        Command::new("sh").arg("-c").arg(&command).output().map_err(|e| {
            TransferError::Command { command: command.clone(), reason: e.to_string() }
        })?;
    if output.status.success() {
        return Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()));
    }
    if absent_ok {
        return Ok(None);
    }
    Err(TransferError::Command {
        command,
        reason: format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim().chars().take(500).collect::<String>()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_spaces_and_quotes() {
        let out = run("printf %s {dst}", &[("dst", "a b'c")], false).unwrap().unwrap();
        assert_eq!(out, "a b'c");
        assert_eq!(run("exit 3", &[], true).unwrap(), None);
        assert!(run("exit 3", &[], false).is_err());
    }
}

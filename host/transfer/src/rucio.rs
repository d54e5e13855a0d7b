//! Rucio as a target, over its REST API (rucio-local.md §3): the file is placed at the PFN the
//! RSE's deterministic path gives it (copied under a partial name, verified, renamed), its
//! replica registered with bytes and adler32, attached to the run's dataset, and a replication
//! rule added on the dataset. Every step is idempotent, and because Rucio silently skips an
//! existing replica even with other values (201), the DID's bytes and adler32 are compared
//! first. Errors are told apart by the `ExceptionClass` header, not only the status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use larmon_catalog::{Adler32, Catalog, FileRecord};
use serde_json::{Value, json};

use crate::credentials;
use crate::curl::{self, Credential, Upload};
use crate::destination::Destination;
use crate::replicate::place_file;
use crate::{Outcome, TransferError};

/// How to reach Rucio.
#[derive(Clone, Debug)]
pub struct RucioConfig {
    /// Server URL, e.g. `https://dune-rucio.fnal.gov`.
    pub url: String,
    /// Authentication server URL where it is another host (Rucio's `auth_host`, e.g.
    /// `https://auth-dune-rucio.fnal.gov`); `None`: the server URL.
    pub auth_url: Option<String>,
    /// Account.
    pub account: String,
    /// How the account logs in.
    pub auth: RucioAuth,
}

/// How a Rucio account logs in (Rucio's `auth_type`).
#[derive(Clone, Debug)]
pub enum RucioAuth {
    /// userpass identity and its password.
    UserPass {
        /// The identity.
        username: String,
        /// Its password.
        password: String,
    },
    /// An X.509 certificate presented at `/auth/x509`: a proxy (chain and key in one file,
    /// `cert == key`) or a user certificate and its key. Read again at every login, so a
    /// renewed proxy is used at the next one.
    X509 {
        /// PEM certificate chain.
        cert: PathBuf,
        /// PEM private key (unencrypted).
        key: PathBuf,
    },
    /// A bearer token (a JWT from the experiment's token issuer, e.g. htgettoken), sent as
    /// Rucio's auth token; found by WLCG Bearer Token Discovery at every request, so a token
    /// the credential monitor renewed is used at once.
    Token,
}

/// A logged-in client. A userpass or X.509 token is renewed before Rucio's default lifetime
/// (1 h) ends and whenever the server refuses it (401 `CannotAuthenticate`: expired or
/// revoked); a bearer token is read again from its source, so a registration pass of many
/// hours never dies of an old token.
pub struct RucioClient {
    agent: ureq::Agent,
    url: String,
    account: String,
    config: RucioConfig,
    token: std::sync::Mutex<Token>,
}

/// A token and when it was obtained.
struct Token {
    value: String,
    obtained: std::time::Instant,
}

/// A token older than this is renewed before use (Rucio's default lifetime is one hour).
const TOKEN_RENEW_AFTER: Duration = Duration::from_secs(50 * 60);

/// One answer: status, Rucio's exception class and message, body.
#[derive(Debug)]
struct Reply {
    status: u16,
    exception: Option<String>,
    body: String,
}

/// An HTTP agent that answers every status (Rucio's errors are read, not raised), trusting
/// the grid CAs where the host has them.
fn agent() -> Result<ureq::Agent, TransferError> {
    let tls = credentials::tls_config().map_err(|reason| login_failed(&reason))?;
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .tls_config(tls)
        .build()
        .into())
}

/// Logs in at `/auth/x509` presenting `cert` and `key` (the same file for a proxy), read now,
/// so a renewed proxy is the one sent. Done by curl ([`curl::request`]): its OpenSSL presents
/// RFC 3820 proxies, which rustls refuses to load. The server is checked against the grid CA
/// directory when there is one.
fn x509_token(
    auth_url: &str,
    account: &str,
    cert: &Path,
    key: &Path,
) -> Result<String, TransferError> {
    if !auth_url.to_ascii_lowercase().starts_with("https://") {
        return Err(login_failed(&format!(
            "x509: {auth_url} is not an https:// server (the certificate is presented in the TLS \
             handshake; give --auth-url https://…)"
        )));
    }
    for file in [cert, key] {
        if let Err(e) = std::fs::File::open(file) {
            return Err(login_failed(&format!(
                "x509: {}",
                credentials::unusable(
                    file,
                    format!("{e} (X509_USER_PROXY, X509_USER_CERT, X509_USER_KEY)")
                )
            )));
        }
    }
    let url = format!("{auth_url}/auth/x509");
    let account = [("X-Rucio-Account", account.to_string())];
    let credential = Credential::Certificate { cert, key };
    let (status, headers) = curl::request("GET", &url, &account, Upload::None, credential, "120")
        .map_err(|e| {
        // The first line says what failed; the rest is curl's advice about itself.
        let reason = match e {
            TransferError::Command { reason, .. } => reason,
            other => other.to_string(),
        };
        let reason = reason.lines().next().unwrap_or_default().to_string();
        let hint = if reason.contains("certificate problem") {
            " (is the server's CA in X509_CERT_DIR or /etc/grid-security/certificates?)"
        } else {
            ""
        };
        login_failed(&format!("x509: {reason}{hint}"))
    })?;
    let value = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match value("x-rucio-auth-token") {
        Some(token) if status == 200 => Ok(token),
        _ => Err(login_failed(&format!(
            "x509: status {status} {}",
            value("exceptionmessage").unwrap_or_default()
        ))),
    }
}

fn login_failed(reason: &str) -> TransferError {
    TransferError::Rucio { action: "login".into(), reason: reason.into() }
}

impl RucioClient {
    /// Logs in and keeps the token.
    pub fn login(config: &RucioConfig) -> Result<Self, TransferError> {
        let agent = agent()?;
        let url = config.url.trim_end_matches('/').to_string();
        let value = Self::new_token(&agent, config)?;
        let token = std::sync::Mutex::new(Token { value, obtained: std::time::Instant::now() });
        Ok(Self { agent, url, account: config.account.clone(), config: config.clone(), token })
    }

    /// A new token: asked of Rucio (userpass, X.509), or read from its source (bearer token).
    fn new_token(agent: &ureq::Agent, config: &RucioConfig) -> Result<String, TransferError> {
        let auth_url = config.auth_url.as_deref().unwrap_or(&config.url).trim_end_matches('/');
        match &config.auth {
            RucioAuth::Token => credentials::bearer_token().ok_or_else(|| {
                login_failed(
                    "no bearer token: none in BEARER_TOKEN, the file BEARER_TOKEN_FILE \
                     names, $XDG_RUNTIME_DIR/bt_u<uid> or /tmp/bt_u<uid> (get one with \
                     htgettoken)",
                )
            }),
            RucioAuth::UserPass { username, password } => {
                userpass_token(agent, auth_url, &config.account, username, password)
            }
            RucioAuth::X509 { cert, key } => x509_token(auth_url, &config.account, cert, key),
        }
    }

    /// The token to send: renewed first when it is old, or when `refused` is the one the
    /// server just refused. A bearer token is read from its source every time; one the server
    /// refused is not sent again.
    fn token(&self, refused: Option<&str>) -> Result<String, TransferError> {
        let mut token = self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let RucioAuth::Token = self.config.auth {
            let current = Self::new_token(&self.agent, &self.config)?;
            if refused.is_some_and(|r| r == current) {
                return Err(login_failed(
                    "Rucio refused the bearer token (expired, wrong audience or scope, or an \
                     identity Rucio does not know): renew it",
                ));
            }
            token.value = current;
            return Ok(token.value.clone());
        }
        let stale = token.obtained.elapsed() >= TOKEN_RENEW_AFTER;
        if stale || refused.is_some_and(|r| r == token.value) {
            token.value = Self::new_token(&self.agent, &self.config)?;
            token.obtained = std::time::Instant::now();
        }
        Ok(token.value.clone())
    }

    /// Sends a request with the current token; once more with a new token if the server
    /// refuses the token.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, TransferError> {
        let token = self.token(None)?;
        let reply = self.request_with(&token, method, path, body)?;
        if reply.status == 401 {
            let token = self.token(Some(&token))?;
            return self.request_with(&token, method, path, body);
        }
        Ok(reply)
    }

    fn request_with(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, TransferError> {
        let url = format!("{}{path}", self.url);
        let transport = |e: ureq::Error| TransferError::Rucio {
            action: format!("{method} {path}"),
            reason: e.to_string(),
        };
        let mut response = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("X-Rucio-Auth-Token", token).call(),
            (_, body) => {
                let text = body.map(Value::to_string).unwrap_or_default();
                let builder = match method {
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                };
                builder
                    .header("X-Rucio-Auth-Token", token)
                    .header("Content-Type", "application/json")
                    .send(text)
            }
        }
        .map_err(transport)?;
        let status = response.status().as_u16();
        let exception = header(response.headers(), "ExceptionClass");
        let body = response.body_mut().read_to_string().map_err(transport)?;
        Ok(Reply { status, exception, body })
    }

    /// Sends a request; success is a 2xx or one of the `accepted` exception classes.
    fn call(
        &self,
        action: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        accepted: &[&str],
    ) -> Result<Reply, TransferError> {
        let reply = self.request(method, path, body)?;
        let ok = (200..300).contains(&reply.status)
            || reply.exception.as_deref().is_some_and(|e| accepted.contains(&e));
        if ok {
            return Ok(reply);
        }
        Err(TransferError::Rucio {
            action: action.into(),
            reason: format!(
                "HTTP {} {}: {}",
                reply.status,
                reply.exception.as_deref().unwrap_or("(no ExceptionClass)"),
                reply.body.chars().take(400).collect::<String>()
            ),
        })
    }

    /// The PFN an RSE expects for `scope:name` (its deterministic path).
    pub fn pfn(&self, rse: &str, scope: &str, name: &str) -> Result<String, TransferError> {
        let reply = self.call(
            "lfns2pfns",
            "GET",
            &format!("/rses/{rse}/lfns2pfns?lfn={scope}:{name}"),
            None,
            &[],
        )?;
        let map: Value = serde_json::from_str(&reply.body).map_err(|e| TransferError::Rucio {
            action: "lfns2pfns".into(),
            reason: format!("unreadable answer {:?}: {e}", reply.body),
        })?;
        map.get(format!("{scope}:{name}")).and_then(Value::as_str).map(str::to_string).ok_or_else(
            || TransferError::Rucio {
                action: "lfns2pfns".into(),
                reason: format!("no PFN for {scope}:{name} in {map}"),
            },
        )
    }

    /// A file DID's bytes and adler32, if it exists.
    pub fn file_did(
        &self,
        scope: &str,
        name: &str,
    ) -> Result<Option<(u64, String)>, TransferError> {
        let reply = self.call(
            "get DID",
            "GET",
            &format!("/dids/{scope}/{name}"),
            None,
            &["DataIdentifierNotFound"],
        )?;
        if reply.exception.is_some() {
            return Ok(None);
        }
        let did: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        Ok(Some((
            did["bytes"].as_u64().unwrap_or(0),
            did["adler32"].as_str().unwrap_or("").to_ascii_lowercase(),
        )))
    }

    /// Registers a replica (idempotent on Rucio's side).
    pub fn add_replica(
        &self,
        rse: &str,
        scope: &str,
        name: &str,
        bytes: u64,
        adler32: &str,
    ) -> Result<(), TransferError> {
        let body = json!({"rse": rse, "files": [
            {"scope": scope, "name": name, "bytes": bytes, "adler32": adler32}
        ]});
        self.call("add replica", "POST", "/replicas", Some(&body), &[]).map(|_| ())
    }

    /// Creates a dataset unless it exists.
    pub fn add_dataset(&self, scope: &str, name: &str) -> Result<(), TransferError> {
        let body = json!({"type": "DATASET"});
        let path = format!("/dids/{scope}/{name}");
        self.call("add dataset", "POST", &path, Some(&body), &["DataIdentifierAlreadyExists"])
            .map(|_| ())
    }

    /// Attaches files to a dataset (already attached ones are fine).
    pub fn attach(
        &self,
        scope: &str,
        dataset: &str,
        files: &[(&str, &str)],
    ) -> Result<(), TransferError> {
        let dids: Vec<Value> = files.iter().map(|(s, n)| json!({"scope": s, "name": n})).collect();
        let body = json!({"ignore_duplicate": true, "attachments": [
            {"scope": scope, "name": dataset, "dids": dids}
        ]});
        self.call("attach", "POST", "/dids/attachments", Some(&body), &[]).map(|_| ())
    }

    /// Adds a rule on a DID unless the same rule exists; returns the new rule's id.
    pub fn add_rule(
        &self,
        scope: &str,
        name: &str,
        rse_expression: &str,
        copies: u32,
    ) -> Result<Option<String>, TransferError> {
        let body = json!({
            "dids": [{"scope": scope, "name": name}],
            "copies": copies,
            "rse_expression": rse_expression,
            "grouping": "DATASET",
            "account": self.account,
        });
        let reply = self.call("add rule", "POST", "/rules/", Some(&body), &["DuplicateRule"])?;
        if reply.exception.is_some() {
            return Ok(None);
        }
        let ids: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        Ok(ids.get(0).and_then(Value::as_str).map(str::to_string))
    }

    /// Replicas of a DID (file or dataset), one JSON object per file.
    pub fn list_replicas(&self, scope: &str, name: &str) -> Result<Vec<Value>, TransferError> {
        let body = json!({"dids": [{"scope": scope, "name": name}], "all_states": true});
        let reply = self.call("list replicas", "POST", "/replicas/list", Some(&body), &[])?;
        Ok(ndjson(&reply.body))
    }

    /// Rules of a DID.
    pub fn list_rules(&self, scope: &str, name: &str) -> Result<Vec<Value>, TransferError> {
        let reply =
            self.call("list rules", "GET", &format!("/dids/{scope}/{name}/rules"), None, &[])?;
        Ok(ndjson(&reply.body))
    }

    /// Files attached to a dataset.
    pub fn list_content(&self, scope: &str, dataset: &str) -> Result<Vec<Value>, TransferError> {
        let reply =
            self.call("list content", "GET", &format!("/dids/{scope}/{dataset}/dids"), None, &[])?;
        Ok(ndjson(&reply.body))
    }
}

fn header(headers: &ureq::http::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn ndjson(body: &str) -> Vec<Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Where a file goes in Rucio.
#[derive(Clone, Debug)]
pub struct RucioTarget {
    /// The RSE the file is placed on and registered at.
    pub rse: String,
    /// Dataset name template: `{namespace}` and `{run}` (7 digits) are replaced.
    pub dataset: String,
    /// RSE expression of the dataset's replication rule (`None`: no rule).
    pub rule_rse_expression: Option<String>,
}

/// What registering a file did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registered {
    /// The PFN on the RSE.
    pub pfn: String,
    /// Whether the bytes had to be copied to it.
    pub copied: bool,
    /// The dataset DID.
    pub dataset: String,
    /// Id of a rule created now (None: it existed, or no rule asked).
    pub new_rule: Option<String>,
}

/// The dataset of a catalogued file: `template` with `{namespace}` and `{run}` (7 digits).
pub fn dataset_of(file: &FileRecord, template: &str) -> String {
    let run = file.run.map_or("unknown".into(), |r| format!("{r:07}"));
    template.replace("{namespace}", &file.declaration.namespace).replace("{run}", &run)
}

/// What Rucio holds of one catalogued file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileState {
    /// `scope:name`.
    pub did: String,
    /// Replica state per RSE (`AVAILABLE`, `COPYING`, `UNAVAILABLE`, …); empty: unknown to
    /// Rucio.
    pub replicas: BTreeMap<String, String>,
}

/// A replication rule of a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleState {
    /// `scope:dataset`.
    pub dataset: String,
    /// Rule id.
    pub id: String,
    /// RSE expression.
    pub rse_expression: String,
    /// `OK`, `REPLICATING`, `STUCK`, `SUSPENDED`, …
    pub state: String,
    /// Locks done, in progress, stuck.
    pub locks: (u64, u64, u64),
}

/// The state in Rucio of catalogued files and of their datasets' rules.
pub fn rucio_state(
    client: &RucioClient,
    files: &[FileRecord],
    dataset_template: &str,
) -> Result<(Vec<FileState>, Vec<RuleState>), TransferError> {
    let mut states = Vec::new();
    let mut datasets = std::collections::BTreeSet::new();
    for file in files {
        let (scope, name) = (&file.declaration.namespace, &file.declaration.name);
        let mut replicas = BTreeMap::new();
        for replica in client.list_replicas(scope, name)? {
            if let Some(by_rse) = replica.get("states").and_then(Value::as_object) {
                for (rse, state) in by_rse {
                    replicas.insert(rse.clone(), state.as_str().unwrap_or("?").to_string());
                }
            }
        }
        states.push(FileState { did: file.did.clone(), replicas });
        datasets.insert((scope.clone(), dataset_of(file, dataset_template)));
    }
    let mut rules = Vec::new();
    for (scope, dataset) in datasets {
        let found = match client.list_rules(&scope, &dataset) {
            Ok(found) => found,
            // A dataset never created (no file of it registered yet) has no rules.
            Err(TransferError::Rucio { reason, .. })
                if reason.contains("DataIdentifierNotFound") =>
            {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        for rule in found {
            let text = |key: &str| rule.get(key).and_then(Value::as_str).unwrap_or("?").to_string();
            let count = |key: &str| rule.get(key).and_then(Value::as_u64).unwrap_or(0);
            rules.push(RuleState {
                dataset: format!("{scope}:{dataset}"),
                id: text("id"),
                rse_expression: text("rse_expression"),
                state: text("state"),
                locks: (
                    count("locks_ok_cnt"),
                    count("locks_replicating_cnt"),
                    count("locks_stuck_cnt"),
                ),
            });
        }
    }
    Ok((states, rules))
}

/// Places, registers, attaches and protects one catalogued file; records the replica in the
/// catalog. Safe to repeat.
pub fn register_file(
    client: &RucioClient,
    catalog: &Catalog,
    file: &FileRecord,
    target: &RucioTarget,
) -> Result<Registered, TransferError> {
    let scope = &file.declaration.namespace;
    let name = &file.declaration.name;
    let adler32 = Adler32::parse(&file.adler32)
        .ok_or_else(|| TransferError::Verify {
            file: file.did.clone(),
            reason: format!("catalogued adler32 {:?} is not 8 hex digits", file.adler32),
        })?
        .to_string();
    // Rucio never compares an existing DID's values: do it here.
    if let Some((bytes, existing)) = client.file_did(scope, name)? {
        if bytes != file.size || existing != adler32 {
            return Err(TransferError::Verify {
                file: file.did.clone(),
                reason: format!(
                    "Rucio already has {scope}:{name} with {bytes} bytes, adler32 {existing}; the file has {} bytes, {adler32}",
                    file.size
                ),
            });
        }
    }
    let pfn = client.pfn(&target.rse, scope, name)?;
    let (storage, location) = Destination::for_pfn(&pfn)?;
    let copied = place_file(file, &storage, &location)? == Outcome::Copied;
    client.add_replica(&target.rse, scope, name, file.size, &adler32)?;
    let dataset = dataset_of(file, &target.dataset);
    client.add_dataset(scope, &dataset)?;
    client.attach(scope, &dataset, &[(scope, name)])?;
    let new_rule = match &target.rule_rse_expression {
        Some(expression) => client.add_rule(scope, &dataset, expression, 1)?,
        None => None,
    };
    catalog.add_replica(file.id, &target.rse, &pfn, &adler32)?;
    Ok(Registered { pfn, copied, dataset: format!("{scope}:{dataset}"), new_rule })
}

/// Logs in at `/auth/userpass`.
fn userpass_token(
    agent: &ureq::Agent,
    auth_url: &str,
    account: &str,
    username: &str,
    password: &str,
) -> Result<String, TransferError> {
    let response = agent
        .get(format!("{auth_url}/auth/userpass"))
        .header("X-Rucio-Account", account)
        .header("X-Rucio-Username", username)
        .header("X-Rucio-Password", password)
        .call()
        .map_err(|e| login_failed(&format!("userpass: {e}")))?;
    let token = response
        .headers()
        .get("X-Rucio-Auth-Token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match token {
        Some(token) if response.status().is_success() => Ok(token),
        _ => Err(login_failed(&format!(
            "userpass: {} {}",
            response.status(),
            header(response.headers(), "ExceptionMessage").unwrap_or_default()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A stand-in for Rucio's REST API that issues tokens `t1`, `t2`, … and refuses `t1` as
    /// expired (401 `CannotAuthenticate`, as Rucio answers an expired or revoked token).
    fn fake_rucio() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut issued = 0;
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                let mut token = String::new();
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                    let lower = header.to_ascii_lowercase();
                    if let Some(value) = lower.strip_prefix("x-rucio-auth-token:") {
                        token = value.trim().to_string();
                    }
                }
                let reply = if path == "/auth/userpass" {
                    issued += 1;
                    log.lock().unwrap().push(format!("login t{issued}"));
                    format!("HTTP/1.1 200 OK\r\nX-Rucio-Auth-Token: t{issued}\r\n")
                } else if token == "t1" {
                    log.lock().unwrap().push(format!("{path} refused {token}"));
                    "HTTP/1.1 401 Unauthorized\r\nExceptionClass: CannotAuthenticate\r\n".into()
                } else {
                    log.lock().unwrap().push(format!("{path} with {token}"));
                    let body = "{\"id\": \"r1\", \"state\": \"OK\"}\n";
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                };
                let reply = if reply.contains("\r\n\r\n") {
                    reply
                } else {
                    format!("{reply}Content-Length: 0\r\n\r\n")
                };
                let closing = reply.replacen("\r\n", "\r\nConnection: close\r\n", 1);
                stream.write_all(closing.as_bytes()).unwrap();
            }
        });
        (url, seen)
    }

    #[test]
    fn a_refused_token_is_renewed_and_the_request_repeated_once() {
        let (url, seen) = fake_rucio();
        let config = RucioConfig {
            url,
            auth_url: None,
            account: "root".into(),
            auth: RucioAuth::UserPass { username: "ddmlab".into(), password: "secret".into() },
        };
        let client = RucioClient::login(&config).unwrap();
        let rules = client.list_rules("scope", "dataset").unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["state"], "OK");
        // The next call uses the renewed token at once.
        client.list_rules("scope", "dataset").unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "login t1",
                "/dids/scope/dataset/rules refused t1",
                "login t2",
                "/dids/scope/dataset/rules with t2",
                "/dids/scope/dataset/rules with t2",
            ]
        );
    }
}

//! Rucio as a target, over its REST API (rucio-local.md §3): the file is placed at the PFN the
//! RSE's deterministic path gives it (copied under a partial name, verified, renamed), its
//! replica registered with bytes and adler32, attached to the run's dataset, and a replication
//! rule added on the dataset. Every step is idempotent, and because Rucio silently skips an
//! existing replica even with other values (201), the DID's bytes and adler32 are compared
//! first. Errors are told apart by the `ExceptionClass` header, not only the status.

use std::path::Path;
use std::time::Duration;

use larmon_catalog::{Adler32, Catalog, FileRecord};
use serde_json::{Value, json};

use crate::TransferError;
use crate::destination::Destination;

/// How to reach Rucio.
#[derive(Clone, Debug)]
pub struct RucioConfig {
    /// Server URL, e.g. `https://dune-rucio.fnal.gov`.
    pub url: String,
    /// Account.
    pub account: String,
    /// userpass identity.
    pub username: String,
    /// Its password.
    pub password: String,
}

/// A logged-in client.
pub struct RucioClient {
    agent: ureq::Agent,
    url: String,
    account: String,
    token: String,
}

/// One answer: status, Rucio's exception class and message, body.
#[derive(Debug)]
struct Reply {
    status: u16,
    exception: Option<String>,
    body: String,
}

impl RucioClient {
    /// Logs in with userpass and keeps the token.
    pub fn login(config: &RucioConfig) -> Result<Self, TransferError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let url = config.url.trim_end_matches('/').to_string();
        let response = agent
            .get(format!("{url}/auth/userpass"))
            .header("X-Rucio-Account", &config.account)
            .header("X-Rucio-Username", &config.username)
            .header("X-Rucio-Password", &config.password)
            .call()
            .map_err(|e| TransferError::Rucio { action: "login".into(), reason: e.to_string() })?;
        let token = response
            .headers()
            .get("X-Rucio-Auth-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match token {
            Some(token) if response.status().is_success() => {
                Ok(Self { agent, url, account: config.account.clone(), token })
            }
            _ => Err(TransferError::Rucio {
                action: "login".into(),
                reason: format!(
                    "{} {}",
                    response.status(),
                    header(response.headers(), "ExceptionMessage").unwrap_or_default()
                ),
            }),
        }
    }

    fn request(
        &self,
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
            ("GET", _) => self.agent.get(&url).header("X-Rucio-Auth-Token", &self.token).call(),
            (_, body) => {
                let text = body.map(Value::to_string).unwrap_or_default();
                let builder = match method {
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                };
                builder
                    .header("X-Rucio-Auth-Token", &self.token)
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
    let path = pfn
        .strip_prefix("file://localhost")
        .or_else(|| pfn.strip_prefix("file://"))
        .ok_or_else(|| TransferError::Rucio {
            action: "placement".into(),
            reason: format!(
                "{pfn} is not a file:// PFN: place the file there first (larmon transfer with command templates)"
            ),
        })?
        .to_string();
    let directory =
        Destination::Directory(Path::new(&path).parent().unwrap_or(Path::new("/")).into());
    let copied = match directory.checksum(&path)? {
        Some(found) if found.to_string() == adler32 => false,
        Some(found) => {
            return Err(TransferError::Verify {
                file: file.did.clone(),
                reason: format!("{path} holds adler32 {found}, not {adler32}: not overwritten"),
            });
        }
        None => {
            let partial = directory.copy_to_partial(&file.path, &path)?;
            let copy = directory.checksum(&partial)?;
            if copy.map(|a| a.to_string()) != Some(adler32.clone()) {
                return Err(TransferError::Verify {
                    file: file.did.clone(),
                    reason: format!("the copy at {partial} does not verify"),
                });
            }
            directory.publish(&partial, &path)?;
            true
        }
    };
    client.add_replica(&target.rse, scope, name, file.size, &adler32)?;
    let run = file.run.map_or("unknown".into(), |r| format!("{r:07}"));
    let dataset = target.dataset.replace("{namespace}", scope).replace("{run}", &run);
    client.add_dataset(scope, &dataset)?;
    client.attach(scope, &dataset, &[(scope, name)])?;
    let new_rule = match &target.rule_rse_expression {
        Some(expression) => client.add_rule(scope, &dataset, expression, 1)?,
        None => None,
    };
    catalog.add_replica(file.id, &target.rse, &pfn, &adler32)?;
    Ok(Registered { pfn, copied, dataset: format!("{scope}:{dataset}"), new_rule })
}

//! `larmon transfer` and `larmon rucio`: verified replication of catalogued files, and their
//! registration in Rucio (crate `larmon-transfer`).

use std::path::PathBuf;

use anyhow::{Result, bail};
use larmon_catalog::Catalog;
use larmon_transfer::credentials;
use larmon_transfer::rucio::{
    RucioAuth, RucioClient, RucioConfig, RucioTarget, register_file, rucio_state,
};
use larmon_transfer::{Destination, Outcome, RetryPolicy, run_queue};

/// Replicate every catalogued file to another site, verified.
///
/// The queue lives in the catalog: every file without a replica at the site is queued; each
/// copy is written under a `.larmon-partial` name, its adler32 measured at the destination
/// (read back), compared with the catalogue's, and only then renamed to its final name and
/// recorded as a replica — replica and `done` in one transaction. A file already at the
/// destination with the same adler32 is recorded without copying; one with other bytes is
/// never overwritten (a visible failure). Failures are retried with exponential backoff and
/// shown by `--status`. Safe against kill -9 at any moment: run it again.
///
/// Destinations (files go to <destination>/<namespace>/<name>):
///   --to DIR                       a local or mounted directory;
///   --to root://HOST[:PORT]//PATH  an XRootD server: xrdcp copies, the server computes the
///                                  adler32 (xrdfs query checksum), xrdfs mv publishes
///                                  (needs xrootd-client; the server needs
///                                  `xrootd.chksum adler32`);
///   --to https://HOST[:PORT]/PATH  HTTPS/WebDAV storage (dCache, EOS, StoRM, XrdHttp; davs://
///                                  is the same): PUT copies, the server computes the adler32
///                                  (Want-Digest), MOVE publishes (with curl; a token in
///                                  BEARER_TOKEN or the file BEARER_TOKEN_FILE names, or the
///                                  X.509 proxy in X509_USER_PROXY, is presented);
///   command templates for any other storage: --remote-root, --copy-command ({src} {tmp}),
///   --checksum-command ({dst}; prints the adler32, exit ≠ 0 if absent) and --rename-command
///   ({tmp} {dst}).
///
/// Examples:
///   larmon transfer --db dm.sqlite --to /global/cfs/cdirs/dune/2x2 --site NERSC
///   larmon transfer --db dm.sqlite --to root://dtn.nersc.gov//dune/2x2 --site NERSC
///   larmon transfer --db dm.sqlite --to davs://fndca1.fnal.gov:2880/pnfs/dune/2x2 --site FNAL
///   larmon transfer --db dm.sqlite --site NERSC --remote-root /dune/2x2 \
///       --copy-command 'gfal-copy -f {src} davs://webdav.example:2880{tmp}' \
///       --checksum-command 'gfal-sum davs://webdav.example:2880{dst} ADLER32' \
///       --rename-command 'gfal-rename davs://webdav.example:2880{tmp} davs://webdav.example:2880{dst}'
///   larmon transfer --db dm.sqlite --site NERSC --status
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The catalog database.
    #[arg(long, default_value = "larmon-catalog.sqlite")]
    db: PathBuf,
    /// Name of the destination site (replicas are recorded under it).
    #[arg(long)]
    site: String,
    #[command(flatten)]
    destination: DestinationArgs,
    /// Keep running: pick up newly catalogued files and due retries every this many seconds.
    #[arg(long)]
    follow_s: Option<f64>,
    /// Print the queue's state (per state, and every failure with its error) and exit.
    #[arg(long)]
    status: bool,
}

pub fn run(args: Args) -> Result<()> {
    let mut catalog = Catalog::open(&args.db)?;
    if args.status {
        catalog.enqueue_all(&args.site)?;
        let transfers = catalog.transfers(&args.site)?;
        let count = |s: &str| transfers.iter().filter(|t| t.state == s).count();
        println!(
            "{}: {} done, {} queued, {} failed",
            args.site,
            count("done"),
            count("queued"),
            count("failed")
        );
        for t in transfers.iter().filter(|t| t.state == "failed") {
            let file = catalog.get(t.file_id)?;
            println!(
                "  failed x{}: {}: {}",
                t.attempts,
                file.map_or(t.file_id.to_string(), |f| f.did),
                t.last_error.as_deref().unwrap_or("")
            );
        }
        return Ok(());
    }
    let destination = args.destination.destination()?;
    let policy = args.destination.policy();
    loop {
        let summary = run_queue(
            &mut catalog,
            &args.site,
            &destination,
            &policy,
            |file, result| match result {
                Ok(Outcome::Copied) => println!("copied {}", file.did),
                Ok(Outcome::AlreadyThere) => println!("already at {}: {}", args.site, file.did),
                Err(e) => eprintln!("larmon: failed (will retry): {e}"),
            },
        )?;
        println!(
            "{}: {} copied, {} already there, {} failed attempts",
            args.site, summary.copied, summary.already_there, summary.failed
        );
        match args.follow_s {
            Some(s) => std::thread::sleep(super::seconds(s.max(0.1))),
            None => break,
        }
    }
    let failed = catalog.transfers(&args.site)?.iter().filter(|t| t.state == "failed").count();
    if failed > 0 {
        bail!("{failed} files are not at {} yet (see --status; run again to retry)", args.site);
    }
    Ok(())
}

/// Where replicas go and how failed copies are retried (shared by `transfer` and `daq`).
#[derive(clap::Args)]
pub struct DestinationArgs {
    /// A local or mounted destination directory, an XRootD URL root://HOST[:PORT]//PATH or an
    /// HTTPS/WebDAV URL https://HOST[:PORT]/PATH (davs://).
    #[arg(long, conflicts_with = "copy_command", value_name = "DIR|URL")]
    to: Option<String>,
    /// Root path on the remote side (with command templates).
    #[arg(long, requires = "copy_command")]
    remote_root: Option<String>,
    /// Copy template: {src} → {tmp}.
    #[arg(long, requires_all = ["checksum_command", "rename_command", "remote_root"])]
    copy_command: Option<String>,
    /// Checksum template for {dst}.
    #[arg(long)]
    checksum_command: Option<String>,
    /// Rename template {tmp} → {dst}.
    #[arg(long)]
    rename_command: Option<String>,
    /// Seconds to wait after the first failure of a file (doubled after each further one).
    #[arg(long, default_value_t = 30.0)]
    backoff_s: f64,
    /// Longest wait between attempts, seconds.
    #[arg(long, default_value_t = 3600.0)]
    max_backoff_s: f64,
}

impl DestinationArgs {
    /// The destination these flags name.
    pub fn destination(&self) -> Result<Destination> {
        Ok(match (&self.to, &self.copy_command) {
            (Some(to), None) => Destination::parse(to)?,
            (None, Some(copy)) => Destination::Commands {
                root: self.remote_root.clone().unwrap_or_default(),
                copy: copy.clone(),
                checksum: self.checksum_command.clone().unwrap_or_default(),
                rename: self.rename_command.clone().unwrap_or_default(),
            },
            _ => bail!(
                "give a destination: --to DIR, --to root://HOST//PATH, --to https://HOST/PATH, or --copy-command with its companions"
            ),
        })
    }

    /// The retry policy these flags give.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            first_backoff: super::seconds(self.backoff_s),
            max_backoff: super::seconds(self.max_backoff_s),
        }
    }
}

/// Place catalogued files on a Rucio RSE and register them: replica, dataset, rule.
///
/// For each file (of --run, or all): compare with an existing DID (Rucio would silently keep
/// other bytes), place the file at the RSE's deterministic PFN (partial name, adler32 verified,
/// rename; file://, root:// and https:// (davs://) RSEs), register the replica with bytes and adler32, create the run's
/// dataset, attach the file, and add the dataset's replication rule to --rule-rse. Every step
/// is idempotent: running it again changes nothing. The replica is recorded in the catalog
/// under the RSE's name.
///
/// --status registers nothing: it prints each catalogued file's replica states per RSE and its
/// dataset's rules (state, locks ok/replicating/stuck), and exits non-zero when a file has no
/// AVAILABLE replica or a rule is STUCK or SUSPENDED (for a cron or Nagios check).
///
/// Login (--auth-type): userpass (password in $RUCIO_PASSWORD), x509 (X509_USER_CERT/KEY or
/// ~/.globus), x509_proxy (X509_USER_PROXY or /tmp/x509up_u<uid>), or token (a bearer token
/// found the WLCG way: BEARER_TOKEN, BEARER_TOKEN_FILE, $XDG_RUNTIME_DIR/bt_u<uid>,
/// /tmp/bt_u<uid>). A Rucio token is renewed before its one-hour lifetime ends and whenever the
/// server refuses it (the certificate or proxy is read again then); a bearer token is read
/// again at every request, so long passes do not fail on an expired credential.
///
/// Examples:
///   larmon rucio --db dm.sqlite --url https://rucio.example --rse DUNE_US_FNAL_DISK_STAGE \
///       --rule-rse T3_US_NERSC --account dunepro --username dunepro --password-env RUCIO_PW
///   larmon rucio --db dm.sqlite --url https://dune-rucio.fnal.gov \
///       --auth-url https://auth-dune-rucio.fnal.gov --auth-type x509_proxy --account dunepro --status
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct RucioArgs {
    /// The catalog database.
    #[arg(long, default_value = "larmon-catalog.sqlite")]
    db: PathBuf,
    /// Rucio server URL.
    #[arg(long)]
    url: String,
    /// Rucio authentication server, where it is another host (Rucio's auth_host).
    #[arg(long)]
    auth_url: Option<String>,
    /// Rucio account.
    #[arg(long, default_value = "root")]
    account: String,
    /// How to log in (server certificates are checked against X509_CERT_DIR or
    /// /etc/grid-security/certificates when there is one).
    #[arg(long, value_enum, default_value = "userpass")]
    auth_type: AuthType,
    /// userpass identity.
    #[arg(long, required_if_eq("auth_type", "userpass"))]
    username: Option<String>,
    /// Name of the environment variable holding the password (never on the command line).
    #[arg(long, default_value = "RUCIO_PASSWORD")]
    password_env: String,
    /// RSE the files are placed on and registered at.
    #[arg(long, required_unless_present = "status")]
    rse: Option<String>,
    /// Dataset name: {namespace} and {run} (7 digits) are replaced.
    #[arg(long, default_value = "{namespace}_run{run}")]
    dataset: String,
    /// RSE expression of the dataset's replication rule.
    #[arg(long)]
    rule_rse: Option<String>,
    /// Only files of this run.
    #[arg(long)]
    run: Option<u64>,
    /// Show replica and rule states in Rucio instead of registering.
    #[arg(long)]
    status: bool,
}

/// How larmon logs in to Rucio (Rucio's `auth_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[clap(rename_all = "snake_case")]
pub enum AuthType {
    /// userpass identity; the password in an environment variable.
    Userpass,
    /// The X.509 user certificate: X509_USER_CERT and X509_USER_KEY, else ~/.globus/.
    X509,
    /// The X.509 proxy: X509_USER_PROXY, else /tmp/x509up_u<uid> (voms-proxy-init).
    X509Proxy,
    /// A bearer token (htgettoken): BEARER_TOKEN, the file BEARER_TOKEN_FILE names,
    /// $XDG_RUNTIME_DIR/bt_u<uid> or /tmp/bt_u<uid>, read again at every request.
    Token,
}

/// What a Rucio login needs, from `larmon rucio` or `larmon daq` options.
pub struct RucioLogin<'a> {
    pub url: &'a str,
    pub auth_url: Option<&'a str>,
    pub account: &'a str,
    pub auth_type: AuthType,
    pub username: Option<&'a str>,
    /// The environment variable holding the userpass password.
    pub password_env: &'a str,
    /// The options that name the username and the password variable, for messages.
    pub flags: [&'a str; 2],
}

/// Logs in to Rucio: userpass (password in the environment, never on the command line),
/// X.509 certificate or proxy, or a bearer token. Server certificates are checked against
/// X509_CERT_DIR or /etc/grid-security/certificates when there is one.
pub fn rucio_login(login: &RucioLogin<'_>) -> Result<RucioClient> {
    let [username_flag, password_flag] = login.flags;
    let auth = match login.auth_type {
        AuthType::Userpass => {
            let Some(username) = login.username else {
                bail!("userpass login needs {username_flag} (or choose another auth type)")
            };
            let password = std::env::var(login.password_env).map_err(|_| {
                anyhow::anyhow!(
                    "set the Rucio password in ${} (or name another with {password_flag})",
                    login.password_env
                )
            })?;
            RucioAuth::UserPass { username: username.into(), password }
        }
        AuthType::X509 => {
            let (cert, key) = credentials::x509_user_certificate();
            RucioAuth::X509 { cert, key }
        }
        AuthType::X509Proxy => {
            let Some(proxy) = credentials::x509_proxy() else {
                bail!(
                    "no X.509 proxy: X509_USER_PROXY is not set and /tmp/x509up_u<uid> does \
                     not exist (make one with voms-proxy-init)"
                )
            };
            RucioAuth::X509 { cert: proxy.clone(), key: proxy }
        }
        AuthType::Token => RucioAuth::Token,
    };
    Ok(RucioClient::login(&RucioConfig {
        url: login.url.into(),
        auth_url: login.auth_url.map(Into::into),
        account: login.account.into(),
        auth,
    })?)
}

pub fn rucio(args: RucioArgs) -> Result<()> {
    let catalog = Catalog::open(&args.db)?;
    let client = rucio_login(&RucioLogin {
        url: &args.url,
        auth_url: args.auth_url.as_deref(),
        account: &args.account,
        auth_type: args.auth_type,
        username: args.username.as_deref(),
        password_env: &args.password_env,
        flags: ["--username", "--password-env"],
    })?;
    if args.status {
        return rucio_status(&client, &catalog, &args);
    }
    let rse = args.rse.clone().unwrap_or_default();
    let target = RucioTarget {
        rse: rse.clone(),
        dataset: args.dataset.clone(),
        rule_rse_expression: args.rule_rse.clone(),
    };
    let files = catalog.list(args.run)?;
    let mut failed = 0;
    for file in &files {
        match register_file(&client, &catalog, file, &target) {
            Ok(r) => println!(
                "{} -> {} ({}), in {}{}",
                file.did,
                r.pfn,
                if r.copied { "copied" } else { "already there" },
                r.dataset,
                r.new_rule.map(|id| format!(", new rule {id}")).unwrap_or_default()
            ),
            Err(e) => {
                failed += 1;
                eprintln!("larmon: {e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} files were not registered (reasons above)", files.len());
    }
    println!("{} files registered at {rse}", files.len());
    Ok(())
}

/// `larmon rucio --status`: replica states of the catalogued files, rule states of their
/// datasets; an error when something needs an operator.
fn rucio_status(client: &RucioClient, catalog: &Catalog, args: &RucioArgs) -> Result<()> {
    let files = catalog.list(args.run)?;
    let (states, rules) = rucio_state(client, &files, &args.dataset)?;
    let mut missing = 0;
    for file in &states {
        let replicas: Vec<String> =
            file.replicas.iter().map(|(rse, state)| format!("{rse}: {state}")).collect();
        if !file.replicas.values().any(|s| s == "AVAILABLE") {
            missing += 1;
        }
        let shown = if replicas.is_empty() { "not in Rucio".into() } else { replicas.join(", ") };
        println!("{}  {shown}", file.did);
    }
    let mut troubled = 0;
    for rule in &rules {
        let (ok, replicating, stuck) = rule.locks;
        if matches!(rule.state.as_str(), "STUCK" | "SUSPENDED") {
            troubled += 1;
        }
        println!(
            "rule {} on {} -> {}: {} (locks {ok} ok, {replicating} replicating, {stuck} stuck)",
            rule.id, rule.dataset, rule.rse_expression, rule.state
        );
    }
    println!(
        "{} files, {} with an AVAILABLE replica; {} rules, {troubled} stuck or suspended",
        states.len(),
        states.len() - missing,
        rules.len()
    );
    if missing > 0 || troubled > 0 {
        bail!("{missing} files without an available replica, {troubled} rules stuck or suspended");
    }
    Ok(())
}

//! `larmon daq`: the data-management chain of a DAQ folder in one supervised command (crate
//! `larmon-transfer`, module `chain`), with the realtime DQ (`larmon watch`) as its child.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use larmon_catalog::metadata::write_sidecar;
use larmon_catalog::{Catalog, Declaration};
use larmon_metadata::dq_pack::{pack_name, pack_run_revision};
use larmon_pipeline::finished_files;
use larmon_pipeline::output::write_atomically;
use larmon_report::health::DAQ_STATUS_FILE;
use larmon_report::{DaqStatus, RunStore};
use larmon_transfer::chain::{ChainEvent, ChainOptions, CleanUp, DqPacking, pass};
use larmon_transfer::rucio::RucioTarget;

use super::catalog::declaration_of;
use super::meta::MetadataArgs;
use super::transfer::{AuthType, DestinationArgs, RucioLogin, rucio_login};

/// Run the whole chain for a DAQ folder: every new file declared, catalogued, replicated with
/// its adler32 verified at the site, processed by the realtime DQ, and (if asked) removed from
/// the DAQ buffer once its remote copy verifies again.
///
/// Each pass (every --poll-s) looks at the folder, the catalog and the destination afresh:
///   arriving   still growing (unchanged for less than --stable-s)
///   declare    declared from its verified DAQ sidecar, else from the data; catalogued
///   replicate  copied to --site (partial name, adler32 read back, rename; retried with backoff)
///   register   with --rucio-url: placed on --rse and registered (replica, run dataset, rule to
///              --rule-rse), as `larmon rucio` does
///   process    with --dq-out: its run report lists it and the watcher has finished it at
///              its current size (`larmon watch` runs as a child, restarted if it stops)
///   clean      with --clean-buffer-after-s: replicated, processed, unchanged that long, and
///              the remote copy's adler32 checked again: then the file (and its sidecar) goes
///   pack       with --pack-dq-into: once nothing is arriving, every file is processed and a
///              run's report is unchanged for --pack-dq-after-s, its report and figures are
///              packed (`larmon pack`), catalogued, replicated and registered like the data;
///              a run whose report changes later gets a new revision (dqm-<run>.r2.tar.gz)
/// Nothing is kept outside the catalog and the folders, so kill -9 at any moment loses
/// nothing: the next start goes on, and a repeated pass changes nothing. After each pass the
/// backlog per stage and the failures are written to daq-status.json (in --dq-out, else beside
/// the catalog); `larmon serve` shows them in /metrics (larmon_daq_backlog{stage=...}).
///
/// Examples:
///   larmon daq /data/daq --db dm.sqlite --site NERSC --to /global/cfs/cdirs/dune/2x2 \
///       --dq-out /data/dqm
///   larmon daq /data/daq --db dm.sqlite --site NERSC --to /mnt/nersc --clean-buffer-after-s 86400
///   larmon daq /data/daq --db dm.sqlite --site NERSC --to root://dtn.example//dune/2x2 \
///       --dq-out /data/dqm --pack-dq-into /data/dq-packs
///   larmon daq /data/daq --db dm.sqlite --site NERSC --to /mnt/nersc --once   # one pass (cron)
///   larmon daq /data/daq --db dm.sqlite --site NERSC --status                 # backlog, failures
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The DAQ folder (raw/packet HDF5, light .data, their sidecars).
    folder: PathBuf,
    /// The catalog database.
    #[arg(long, default_value = "larmon-catalog.sqlite")]
    db: PathBuf,
    /// Name of the replication site (replicas are recorded under it).
    #[arg(long)]
    site: String,
    #[command(flatten)]
    destination: DestinationArgs,
    /// Rucio server: register every replicated file (login as `larmon rucio --auth-type`
    /// says; userpass password in $RUCIO_PASSWORD, or the variable --rucio-password-env names).
    #[arg(long, requires = "rse")]
    rucio_url: Option<String>,
    /// Rucio authentication server, where it is another host (Rucio's auth_host).
    #[arg(long)]
    rucio_auth_url: Option<String>,
    /// Rucio account.
    #[arg(long, default_value = "root")]
    rucio_account: String,
    /// How to log in to Rucio: userpass, x509, x509_proxy or token (see `larmon rucio --help`).
    #[arg(long, value_enum, default_value = "userpass")]
    rucio_auth_type: AuthType,
    /// Rucio userpass identity.
    #[arg(long)]
    rucio_username: Option<String>,
    /// Environment variable holding the Rucio password.
    #[arg(long, default_value = "RUCIO_PASSWORD")]
    rucio_password_env: String,
    /// RSE the files are placed on and registered at.
    #[arg(long)]
    rse: Option<String>,
    /// RSE expression of each run dataset's replication rule.
    #[arg(long)]
    rule_rse: Option<String>,
    /// Rucio dataset name: {namespace} and {run} (7 digits) are replaced.
    #[arg(long, default_value = "{namespace}_run{run}")]
    dataset: String,
    /// Run the realtime DQ into this folder (`larmon watch FOLDER --out DQ_OUT`) and count a
    /// file processed once its run report there lists it and the watcher has finished it.
    #[arg(long, value_name = "DQ_OUT")]
    dq_out: Option<PathBuf>,
    /// Remove a DAQ file (and its sidecar) from the folder once it is replicated, processed and
    /// unchanged for this many seconds, after its remote adler32 is checked again.
    #[arg(long, value_name = "SECONDS")]
    clean_buffer_after_s: Option<f64>,
    /// Pack each settled run's DQ outputs into this folder (dqm-<run>.tar.gz with its declad
    /// sidecar), catalogue them and ship them like the data.
    #[arg(long, value_name = "DIR", requires = "dq_out")]
    pack_dq_into: Option<PathBuf>,
    /// Seconds a run's report must be unchanged (and the folder settled) before it is packed.
    #[arg(long, value_name = "SECONDS", default_value_t = 600.0)]
    pack_dq_after_s: f64,
    /// Seconds between passes.
    #[arg(long, default_value_t = 10.0)]
    poll_s: f64,
    /// Do one pass and stop (for cron; no DQ child).
    #[arg(long)]
    once: bool,
    /// Print the last pass's status (backlog per stage, failures) and exit.
    #[arg(long)]
    status: bool,
    #[command(flatten)]
    metadata: MetadataArgs,
}

/// Where the status file goes: the DQ folder, else beside the catalog.
fn status_dir(args: &Args) -> PathBuf {
    match &args.dq_out {
        Some(out) => out.clone(),
        None => match args.db.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        },
    }
}

/// The names of the files the DQ has processed. In a run the watcher follows (it has `watch/`
/// state), a file is processed once the run report lists it and the watcher has finished it
/// (flushed and checkpointed) at the size it has now: a file the report lists but the watcher
/// has not finished (it was killed first, or the file grew) is not processed yet, and cleaning
/// it from the buffer then would leave the watcher only its checkpoint. A report written by a
/// batch `larmon run` (no watcher state) read its files whole: listed is processed, as is a
/// listed file no longer in `folder` (cleaned). Checkpoints are read only for runs with a file
/// still in the folder (the store parses a report again only when it changed).
fn processed_names(reports: &RunStore, folder: &Path) -> BTreeSet<String> {
    let name_of = |path: &Path| Some(path.file_name()?.to_string_lossy().into_owned());
    let in_folder: BTreeSet<String> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let (runs, _unreadable) = reports.runs();
    let mut processed = BTreeSet::new();
    for report in runs {
        let listed: BTreeSet<String> = report.files.iter().filter_map(|f| name_of(f)).collect();
        // Gone from the buffer (cleaned once processed): the report keeps it.
        processed.extend(listed.difference(&in_folder).cloned());
        if listed.is_disjoint(&in_folder) {
            continue;
        }
        if !reports.root().join(&report.run).join("watch").is_dir() {
            processed.extend(listed);
            continue;
        }
        for (file, size) in finished_files(reports.root(), &report.run) {
            let Some(name) = name_of(&file) else { continue };
            let size_now = std::fs::metadata(folder.join(&name)).map(|m| m.len());
            if listed.contains(&name) && size_now.is_ok_and(|now| now == size) {
                processed.insert(name);
            }
        }
    }
    processed
}

/// `larmon watch` over the folder, as a child process.
fn start_watch(args: &Args, out: &Path) -> Result<Child> {
    let exe = std::env::current_exe().context("finding larmon's own executable")?;
    let mut command = Command::new(exe);
    command.arg("watch").arg(&args.folder).arg("--out").arg(out);
    if let Some(config) = args.metadata.config() {
        command.arg("--config").arg(config);
    }
    // The watcher ends with the chain, also when the chain is killed with SIGKILL: a restarted
    // chain must not find an orphaned watcher writing into the same folder.
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; the closure runs in the child between fork and
        // exec and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    command.spawn().context("starting larmon watch")
}

fn print_status(status: &DaqStatus) {
    let stages = larmon_transfer::chain::STAGES;
    let waiting: Vec<String> =
        stages.iter().map(|s| format!("{s} {}", status.backlog.get(*s).unwrap_or(&0))).collect();
    let done: Vec<String> = stages
        .iter()
        .filter(|s| **s != "arriving")
        .map(|s| format!("{s} {}", status.done.get(*s).unwrap_or(&0)))
        .collect();
    println!("{} -> {}: waiting: {}", status.folder.display(), status.site, waiting.join(", "));
    println!("  past: {}", done.join(", "));
    for failure in &status.failures {
        println!("  failed at {}: {}: {}", failure.stage, failure.file.display(), failure.error);
    }
}

pub fn run(args: Args) -> Result<()> {
    let dir = status_dir(&args);
    if args.status {
        match DaqStatus::read(&dir) {
            None => bail!("no {DAQ_STATUS_FILE} in {}: has larmon daq run?", dir.display()),
            Some(status) => print_status(&status.map_err(anyhow::Error::msg)?),
        }
        return Ok(());
    }
    let folder = args
        .folder
        .canonicalize()
        .with_context(|| format!("{}: not a readable folder", args.folder.display()))?;
    let metadata = args.metadata.options()?;
    let options = ChainOptions {
        folder,
        site: args.site.clone(),
        destination: args.destination.destination()?,
        policy: args.destination.policy(),
        stable_for: metadata.stable_for,
        clean_up: args.clean_buffer_after_s.map(|s| CleanUp { min_age: super::seconds(s) }),
    };
    let declare = |file: &Path| declaration_of(file, &metadata).map_err(|e| super::error_text(&e));
    let rucio = match &args.rucio_url {
        None => None,
        Some(url) => {
            let client = rucio_login(&RucioLogin {
                url,
                auth_url: args.rucio_auth_url.as_deref(),
                account: &args.rucio_account,
                auth_type: args.rucio_auth_type,
                username: args.rucio_username.as_deref(),
                password_env: &args.rucio_password_env,
                flags: ["--rucio-username", "--rucio-password-env"],
            })?;
            let target = RucioTarget {
                rse: args.rse.clone().unwrap_or_default(),
                dataset: args.dataset.clone(),
                rule_rse_expression: args.rule_rse.clone(),
            };
            Some((client, target))
        }
    };
    let mut catalog = Catalog::open(&args.db)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let reports = args.dq_out.as_deref().map(RunStore::new);
    let packs_dir = match &args.pack_dq_into {
        Some(into) => Some(
            std::path::absolute(into)
                .with_context(|| format!("{}: not a usable folder", into.display()))?,
        ),
        None => None,
    };
    let pack = |run: &str, revision: u32| -> Result<(PathBuf, Declaration), String> {
        let (Some(out), Some(into)) = (&args.dq_out, &packs_dir) else {
            return Err("no --dq-out or --pack-dq-into".into());
        };
        let data_stream = args.metadata.data_stream();
        let text = |e: anyhow::Error| super::error_text(&e);
        let pack =
            pack_run_revision(out, run, into, data_stream, revision).map_err(|e| text(e.into()))?;
        // This revision is not catalogued yet: a sidecar left by an interrupted pass is ours.
        write_sidecar(&pack.path, &pack.declaration, true).map_err(|e| text(e.into()))?;
        Ok((pack.path, pack.declaration))
    };
    let packing = match (&reports, &packs_dir) {
        (Some(reports), Some(into)) => Some(DqPacking {
            reports,
            into: into.clone(),
            quiet_for: super::seconds(args.pack_dq_after_s),
            name: pack_name,
            pack: &pack,
        }),
        _ => None,
    };
    let mut watch: Option<(Child, Instant)> = None;
    loop {
        if let (Some(out), false) = (&args.dq_out, args.once) {
            let running = match &mut watch {
                Some((child, _)) => child.try_wait()?.is_none(),
                None => false,
            };
            let due = watch.as_ref().is_none_or(|(_, at)| at.elapsed() > Duration::from_secs(5));
            if !running && due {
                if let Some((mut child, _)) = watch.take() {
                    let code = child.wait()?;
                    eprintln!("larmon: the DQ watcher stopped ({code}): restarting it");
                }
                watch = Some((start_watch(&args, out)?, Instant::now()));
            }
        }
        let processed = reports.as_ref().map(|r| processed_names(r, &args.folder));
        let rucio = rucio.as_ref().map(|(client, target)| (client, target));
        let status = pass(
            &mut catalog,
            &options,
            &declare,
            rucio,
            processed.as_ref(),
            packing.as_ref(),
            |event| match event {
                ChainEvent::Registered(did, pfn) => println!("registered {did} at {pfn}"),
                ChainEvent::Declared(file, did) => {
                    println!("declared {} as {did}", file.display())
                }
                ChainEvent::Replicated(did, outcome) => {
                    println!("replicated {did} ({outcome:?})")
                }
                ChainEvent::Cleaned(file) => {
                    println!("cleaned {} from the buffer", file.display())
                }
                ChainEvent::Packed(file, did) => {
                    println!("packed the DQ outputs into {} as {did}", file.display())
                }
                ChainEvent::Failed(f) => {
                    eprintln!("larmon: {} failed for {}: {}", f.stage, f.file.display(), f.error)
                }
            },
        )?;
        let text = serde_json::to_vec_pretty(&status)?;
        let path = dir.join(DAQ_STATUS_FILE);
        write_atomically(&path, &text).with_context(|| format!("writing {}", path.display()))?;
        if args.once {
            print_status(&status);
            if !status.failures.is_empty() {
                bail!("{} failures on this pass (retried on the next)", status.failures.len());
            }
            return Ok(());
        }
        std::thread::sleep(super::seconds(args.poll_s.max(0.1)));
    }
}

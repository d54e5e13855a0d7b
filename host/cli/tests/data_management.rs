//! Data management as an operator runs it: `larmon meta` on real-format files (times against the
//! truth, sidecars only once a file stopped growing), the catalog (add/list/show/query,
//! idempotence, conflicts, charge/light/MINERvA association), `larmon transfer` (a few hundred
//! files while the process is killed with SIGKILL at random moments; command-template
//! destinations; visible failures), and `larmon rucio` against a real Rucio server
//! (RUCIO_TEST_URL; `.ci/test` starts one under CI=true, elsewhere the test says SKIPPED);
//! `larmon transfer --to root://…` and a Rucio RSE with the root protocol against a real XRootD
//! server (XROOTD_TEST_URL; `.ci/test` starts one under CI=true with `.ci/xrootd-local.sh`);
//! Rucio logins with an X.509 proxy, a user certificate and a bearer token against the same
//! Rucio over HTTPS (RUCIO_X509_TEST_URL, RUCIO_X509_TEST_DIR: `.ci/rucio-local.sh` makes the
//! certificates and the TLS front).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use larmon_catalog::Adler32;
use larmon_tests::{data, scratch, shared_fixture};
use serde_json::{Value, json};

fn larmon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_larmon")).args(args).output().expect("runs larmon")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn meta_times_and_counts_come_from_the_data() {
    let truth = read_json(&data("small-truth.json"));
    let mut cases = vec![(data("small-raw.h5"), "raw"), (data("small-packets.h5"), "decoded-raw")];
    if let Some(f) = shared_fixture("cosmics-raw.h5") {
        cases.push((f, "raw"));
    }
    for (file, tier) in cases {
        let cosmics = file.to_string_lossy().contains("cosmics");
        let truth = if cosmics {
            read_json(&shared_fixture("cosmics-truth.json").unwrap())
        } else {
            truth.clone()
        };
        let declaration: Value =
            serde_json::from_str(&ok(larmon(&["meta", p(&file), "--stable-s", "0"]))).unwrap();
        let m = &declaration["metadata"];
        assert_eq!(m["core.start_time"], json!(truth["run"]["message_unix_min"].as_f64().unwrap()));
        assert_eq!(m["core.end_time"], json!(truth["run"]["message_unix_max"].as_f64().unwrap()));
        assert_eq!(m["core.data_tier"], tier);
        // Every muon is one external trigger, i.e. one triggered event.
        assert_eq!(m["core.event_count"], json!(truth["tracks"].as_array().unwrap().len()));
        assert_eq!(declaration["namespace"], "neardet-2x2-lar-charge");
        assert_eq!(m["core.run_type"], "neardet-2x2-lar-charge");
        let (adler, size) = Adler32::of_file(&file).unwrap();
        assert_eq!(declaration["checksums"]["adler32"], adler.to_string());
        assert_eq!(declaration["size"], size);
        assert!(m.as_object().unwrap().keys().all(|k| k.contains('.')));
    }
}

#[test]
fn sidecar_waits_for_a_growing_file_and_appears_atomically() {
    let dir = scratch("dm-sidecar");
    let daq = dir.join("daq");
    // A DAQ writing run 7 live for 4 s; `meta --sidecar` started at once must describe the
    // finished file, not a prefix of it.
    let mut writer = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .args(["simulate", "--run", "7", "--duration-s", "4", "--realtime", "--speed", "2"])
        .args(["--muon-rate-hz", "20", "--out", p(&daq)])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let file = loop {
        let found = std::fs::read_dir(&daq).ok().and_then(|entries| {
            entries.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "h5"))
        });
        if let Some(f) = found {
            break f;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the simulated DAQ wrote nothing");
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = ok(larmon(&["meta", p(&file), "--sidecar", "--stable-s", "1.5"]));
    assert!(writer.wait().unwrap().success());
    let sidecar = PathBuf::from(format!("{}.json", file.display()));
    assert_eq!(out.trim(), sidecar.display().to_string());
    let declaration = read_json(&sidecar);
    let (adler, size) = Adler32::of_file(&file).unwrap();
    assert_eq!(declaration["size"], size, "the sidecar describes a prefix of the file");
    assert_eq!(declaration["checksums"]["adler32"], adler.to_string());
    assert_eq!(declaration["metadata"]["core.runs"], json!([7]));
    assert_eq!(declaration["metadata"]["core.runs_subruns"], json!([700001]));
    // No temporary file left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(&daq)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Writes `bytes` as a file with a declad-style sidecar of `namespace`.
fn file_with_sidecar(path: &Path, bytes: &[u8], namespace: &str, run: u64, span: (f64, f64)) {
    std::fs::write(path, bytes).unwrap();
    let declaration = json!({
        "namespace": namespace,
        "name": path.file_name().unwrap().to_string_lossy(),
        "size": bytes.len(),
        "checksums": {"adler32": Adler32::of(bytes).to_string()},
        "metadata": {
            "core.run_type": namespace,
            "core.runs": [run],
            "core.runs_subruns": [run * 100_000 + 1],
            "core.start_time": span.0,
            "core.end_time": span.1,
            "core.file_format": "binary",
        }
    });
    std::fs::write(format!("{}.json", path.display()), declaration.to_string()).unwrap();
}

#[test]
fn catalog_adds_idempotently_refuses_conflicts_queries_and_associates() {
    let dir = scratch("dm-catalog");
    let db = dir.join("catalog.sqlite");
    let daq = dir.join("daq");
    ok(larmon(&["simulate", "--run", "9", "--duration-s", "4", "--files", "2", "--out", p(&daq)]));
    let truth = read_json(&daq.join("binary-0000009-truth.json"));
    let charge: Vec<PathBuf> =
        truth["files"].as_array().unwrap().iter().map(|f| daq.join(f.as_str().unwrap())).collect();
    let t0 = truth["run"]["unix_start"].as_f64().unwrap();
    // Charge file 0 holds seconds t0..t0+1, file 1 t0+2..t0+3. Light covers [t0, t0+0.5]:
    // file 0 only (file 1 starts 1.5 s later, beyond the 1 s tolerance); MINERvA spans both;
    // a light file at another time is paired with nothing. The light DAQ numbers its runs on
    // its own: without a run database, time decides.
    let light = dir.join("mpd_run9_0001.data");
    file_with_sidecar(&light, b"light bytes of run 9", "neardet-2x2-lar-light", 9, (t0, t0 + 0.5));
    let minerva = dir.join("MV_00009_0001.root");
    file_with_sidecar(&minerva, b"minerva bytes", "neardet-2x2-minerva", 9, (t0, t0 + 4.0));
    let stray = dir.join("mpd_run10_0001.data");
    file_with_sidecar(
        &stray,
        b"another run",
        "neardet-2x2-lar-light",
        10,
        (t0 + 100.0, t0 + 104.0),
    );
    let mut add = vec!["catalog", "--db", p(&db), "add", "--stable-s", "0"];
    let all = [charge.clone(), vec![light.clone(), minerva.clone(), stray.clone()]].concat();
    add.extend(all.iter().map(|f| p(f)));
    assert!(ok(larmon(&add)).contains("5 added, 0 already there, 0 refused"));
    assert!(ok(larmon(&add)).contains("0 added, 5 already there, 0 refused"));

    // A sidecar that lies about the bytes is refused, and so is a new file under a known name.
    let liar = dir.join("mpd_run9_0002.data");
    file_with_sidecar(&liar, b"original", "neardet-2x2-lar-light", 9, (t0, t0 + 1.0));
    std::fs::write(&liar, b"modified after the sidecar was written").unwrap();
    let refused = larmon(&["catalog", "--db", p(&db), "add", p(&liar)]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("the file has"));
    let other_dir = dir.join("elsewhere");
    std::fs::create_dir_all(&other_dir).unwrap();
    let clash = other_dir.join("mpd_run9_0001.data");
    file_with_sidecar(&clash, b"other light bytes", "neardet-2x2-lar-light", 9, (t0, t0 + 1.0));
    let refused = larmon(&["catalog", "--db", p(&db), "add", p(&clash)]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already in the catalog"));

    let list = ok(larmon(&["catalog", "--db", p(&db), "list", "--run", "9", "--json"]));
    assert_eq!(list.lines().count(), 4);
    let show: Value = serde_json::from_str(&ok(larmon(&[
        "catalog",
        "--db",
        p(&db),
        "show",
        charge[0].file_name().unwrap().to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(show["file"]["adler32"], Adler32::of_file(&charge[0]).unwrap().0.to_string());
    let raw =
        ok(larmon(&["catalog", "--db", p(&db), "query", "core.data_tier=raw", "core.runs=9"]));
    assert_eq!(raw.lines().count(), 2, "{raw}");
    let later = format!("core.start_time>{}", t0 + 0.5);
    let late = ok(larmon(&["catalog", "--db", p(&db), "query", "core.data_tier=raw", &later]));
    assert_eq!(late.lines().count(), 1, "{late}");

    let association: Value =
        serde_json::from_str(&ok(larmon(&["catalog", "--db", p(&db), "associate"]))).unwrap();
    let run9 = association.as_array().unwrap().iter().find(|r| r["run"] == 9).unwrap();
    let links: Vec<(String, String)> = run9["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["charge"].as_str().unwrap().into(), l["other"].as_str().unwrap().into()))
        .collect();
    let did = |ns: &str, f: &Path| format!("{ns}:{}", f.file_name().unwrap().to_string_lossy());
    let c = |i: usize| did("neardet-2x2-lar-charge", &charge[i]);
    let l = did("neardet-2x2-lar-light", &light);
    let m = did("neardet-2x2-minerva", &minerva);
    assert!(links.contains(&(c(0), l.clone())), "{links:?}");
    assert!(!links.contains(&(c(1), l.clone())), "{links:?}");
    assert!(links.contains(&(c(0), m.clone())) && links.contains(&(c(1), m)), "{links:?}");
    assert!(!links.iter().any(|(_, o)| o.contains("run10")), "{links:?}");
    let run10 = association.as_array().unwrap().iter().find(|r| r["run"] == 10).unwrap();
    assert_eq!(run10["unmatched"], json!([did("neardet-2x2-lar-light", &stray)]));

    // The run database (the 2x2's All_global_subruns columns, as CSV): CRS run 9 and LRS
    // run 10 are global run 50009; the stray light file joins it by its LRS run.
    let run_db = dir.join("runs.csv");
    std::fs::write(
        &run_db,
        format!(
            "global_subrun,global_run,start_time,end_time,crs_run,crs_subrun,lrs_run,lrs_subrun,mx2_run,mx2_subrun\n\
             500090000000,50009,{},{},9,1,10,1,9,1\n",
            t0 - 10.0,
            t0 + 200.0
        ),
    )
    .unwrap();
    let association: Value = serde_json::from_str(&ok(larmon(&[
        "catalog",
        "--db",
        p(&db),
        "associate",
        "--run-db",
        p(&run_db),
    ])))
    .unwrap();
    let global = association.as_array().unwrap();
    assert_eq!(global.len(), 1, "{association}");
    assert_eq!(global[0]["run"], 50009);
    assert_eq!(global[0]["light"].as_array().unwrap().len(), 2, "{association}");
    // meta records the global run of a file's DAQ run.
    let meta: Value = serde_json::from_str(&ok(larmon(&[
        "meta",
        "--stable-s",
        "0",
        "--run-db",
        p(&run_db),
        p(&charge[0]),
    ])))
    .unwrap();
    assert_eq!(meta["metadata"]["core.runs"], json!([9]));
    assert_eq!(meta["metadata"]["dune.global_run"], 50009);
}

/// The real 2x2 DAQ names its early files after a date: no run number is invented from it, and
/// the operator's --run is taken.
#[test]
fn a_date_named_daq_file_has_no_run_until_one_is_given() {
    let real = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/real/crs-daq-raw/binary-2023_07_07_16_33_PDT.h5");
    let dir = scratch("dm-date-named");
    // The real file when ../shared is here; else a simulated file under the same name.
    let file = dir.join("binary-2023_07_07_16_33_PDT.h5");
    if real.exists() {
        std::fs::copy(&real, &file).unwrap();
    } else {
        eprintln!("SKIPPED the real file (needs ../shared/real); using a simulated one");
        let daq = dir.join("daq");
        ok(larmon(&[
            "simulate",
            "--run",
            "3",
            "--duration-s",
            "1",
            "--files",
            "1",
            "--out",
            p(&daq),
        ]));
        let truth = read_json(&daq.join("binary-0000003-truth.json"));
        std::fs::copy(daq.join(truth["files"][0].as_str().unwrap()), &file).unwrap();
    }
    let out = larmon(&["meta", "--stable-s", "0", p(&file)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(meta["metadata"].get("core.runs").is_none(), "2023 is a year, not a run: {meta}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run number"));
    let db = dir.join("catalog.sqlite");
    let added = larmon(&["catalog", "--db", p(&db), "add", "--stable-s", "0", p(&file)]);
    assert!(String::from_utf8_lossy(&added.stderr).contains("no run number"));
    let meta: Value = serde_json::from_str(&ok(larmon(&[
        "meta",
        "--stable-s",
        "0",
        "--run",
        "50015.2",
        p(&file),
    ])))
    .unwrap();
    assert_eq!(meta["metadata"]["core.runs_subruns"], json!([50_015u64 * 100_000 + 2]));
}

/// Files with sidecars for the transfer tests: sizes 100–600 kB, varied bytes.
fn transfer_fixture(dir: &Path, count: usize) -> PathBuf {
    let db = dir.join("catalog.sqlite");
    let source = dir.join("source");
    std::fs::create_dir_all(&source).unwrap();
    let mut files = Vec::new();
    let mut state = 0x9e3779b97f4a7c15u64;
    for i in 0..count {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let size = 100_000 + (state >> 40) as usize % 500_000;
        let bytes: Vec<u8> =
            (0..size).map(|k| ((k as u64).wrapping_mul(state) >> 56) as u8).collect();
        let path = source.join(format!("mpd_run{:03}_{i:04}.data", i / 50));
        file_with_sidecar(&path, &bytes, "neardet-2x2-lar-light", (i / 50) as u64, (0.0, 1.0));
        files.push(path);
    }
    let mut add = vec!["catalog".to_string(), "--db".into(), p(&db).into(), "add".into()];
    add.extend(files.iter().map(|f| p(f).to_string()));
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    ok(larmon(&add));
    db
}

#[test]
fn transfer_survives_random_kills_and_every_file_arrives_once_verified() {
    let dir = scratch("dm-transfer-kill");
    let count = 300;
    let db = transfer_fixture(&dir, count);
    let dest = dir.join("nersc");
    let transfer = || {
        Command::new(env!("CARGO_BIN_EXE_larmon"))
            .args(["transfer", "--db", p(&db), "--site", "NERSC", "--to", p(&dest)])
            .args(["--backoff-s", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut state =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64;
    println!("kill-moment seed {state}");
    let mut kills = 0;
    for _ in 0..6 {
        let mut child = transfer();
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(100 + (state >> 33) % 400));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    let status = ok(larmon(&["transfer", "--db", p(&db), "--site", "NERSC", "--status"]));
    println!("killed the transfer {kills} times; then {}", status.lines().next().unwrap());
    let last = ok(larmon(&["transfer", "--db", p(&db), "--site", "NERSC", "--to", p(&dest)]));
    assert!(last.contains("0 failed attempts"), "{last}");
    // Every file once at the destination, verified, nothing partial; the catalog agrees.
    let landed: Vec<PathBuf> = std::fs::read_dir(dest.join("neardet-2x2-lar-light"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        landed.iter().all(|f| !f.to_string_lossy().ends_with(".larmon-partial")),
        "a partial copy was left behind"
    );
    assert_eq!(landed.len(), count);
    let list = ok(larmon(&["catalog", "--db", p(&db), "list", "--json"]));
    assert_eq!(list.lines().count(), count);
    for line in list.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let name = record["declaration"]["name"].as_str().unwrap();
        let copy = dest.join("neardet-2x2-lar-light").join(name);
        let (adler, size) = Adler32::of_file(&copy).unwrap();
        assert_eq!(
            (adler.to_string(), size),
            (record["adler32"].as_str().unwrap().to_string(), record["size"].as_u64().unwrap())
        );
        let show: Value = serde_json::from_str(&ok(larmon(&[
            "catalog",
            "--db",
            p(&db),
            "show",
            record["did"].as_str().unwrap(),
        ])))
        .unwrap();
        let replicas = show["replicas"].as_array().unwrap();
        assert_eq!(replicas.len(), 1, "{name}: {replicas:?}");
        assert_eq!(replicas[0]["location"], copy.display().to_string());
        assert_eq!(replicas[0]["adler32"], adler.to_string());
    }
    let status = ok(larmon(&["transfer", "--db", p(&db), "--site", "NERSC", "--status"]));
    assert!(status.starts_with(&format!("NERSC: {count} done, 0 queued, 0 failed")), "{status}");
    // Idempotent: a second pass has nothing to do.
    let again = ok(larmon(&["transfer", "--db", p(&db), "--site", "NERSC", "--to", p(&dest)]));
    assert!(again.contains("0 copied, 0 already there, 0 failed"), "{again}");
    // 300 files twice are ~200 MB: leave nothing behind on success.
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn transfer_by_command_templates_and_failures_are_visible() {
    let dir = scratch("dm-transfer-commands");
    let db = transfer_fixture(&dir, 5);
    let remote = dir.join("remote");
    let larmon_bin = env!("CARGO_BIN_EXE_larmon");
    let args = |site: &str| {
        vec![
            "transfer".to_string(),
            "--db".into(),
            p(&db).into(),
            "--site".into(),
            site.into(),
            "--remote-root".into(),
            p(&remote).into(),
            "--copy-command".into(),
            "mkdir -p \"$(dirname {tmp})\" && cp {src} {tmp}".into(),
            "--checksum-command".into(),
            format!("test -e {{dst}} && {larmon_bin} checksum {{dst}}"),
            "--rename-command".into(),
            "mv {tmp} {dst}".into(),
        ]
    };
    let run = |site: &str| {
        let a = args(site);
        larmon(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let first = ok(run("REMOTE"));
    assert!(first.contains("5 copied, 0 already there, 0 failed"), "{first}");
    let second = ok(run("REMOTE"));
    assert!(second.contains("0 copied"), "{second}");

    // A second site that already holds a different file under one of the names: that file is
    // never overwritten, its failure is shown, the others arrive, the exit code says so.
    let db_list = ok(larmon(&["catalog", "--db", p(&db), "list", "--json"]));
    let first_name = serde_json::from_str::<Value>(db_list.lines().next().unwrap()).unwrap()
        ["declaration"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let other = dir.join("other");
    let squatter = other.join("neardet-2x2-lar-light").join(&first_name);
    std::fs::create_dir_all(squatter.parent().unwrap()).unwrap();
    std::fs::write(&squatter, b"someone else's bytes").unwrap();
    // With no backoff the failed file is due again at once: the pass still ends (each file is
    // tried once per pass).
    let out = larmon(&[
        "transfer",
        "--db",
        p(&db),
        "--site",
        "OTHER",
        "--to",
        p(&other),
        "--backoff-s",
        "0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not overwritten"));
    assert_eq!(std::fs::read(&squatter).unwrap(), b"someone else's bytes");
    let status = ok(larmon(&["transfer", "--db", p(&db), "--site", "OTHER", "--status"]));
    assert!(status.starts_with("OTHER: 4 done, 0 queued, 1 failed"), "{status}");
    assert!(status.contains("failed x1") && status.contains(&first_name), "{status}");
}

/// The XRootD server of the root:// tests (`bash .ci/xrootd-local.sh start`; `.ci/test` starts
/// one under CI=true), or `None` and the test says SKIPPED.
fn xrootd_test_url() -> Option<String> {
    let url = std::env::var("XROOTD_TEST_URL").ok();
    if url.is_none() {
        println!(
            "SKIPPED: XROOTD_TEST_URL is not set (bash .ci/xrootd-local.sh start, then export XROOTD_TEST_URL=root://127.0.0.1:11094)"
        );
    }
    url.map(|u| u.trim_end_matches('/').to_string())
}

/// The WebDAV endpoint of the same server (XrdHttp; `.ci/xrootd-local.sh` serves it on the
/// root:// port + 100), or `None` and the test says SKIPPED.
fn xrootd_http_test_url() -> Option<String> {
    let url = std::env::var("XROOTD_HTTP_TEST_URL").ok();
    if url.is_none() {
        println!(
            "SKIPPED: XROOTD_HTTP_TEST_URL is not set (bash .ci/xrootd-local.sh start, then export XROOTD_HTTP_TEST_URL=http://127.0.0.1:11194)"
        );
    }
    url.map(|u| u.trim_end_matches('/').to_string())
}

/// What the WebDAV server itself says of a file, asked with curl (not larmon): the adler32 in
/// its `Digest` answer to `Want-Digest: adler32`, or `None` when it answers 404.
fn webdav_adler32(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sI", "-H", "Want-Digest: adler32", url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    if text.lines().next().is_some_and(|status| status.contains(" 404")) {
        return None;
    }
    let digest = text
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("digest:").map(str::to_string));
    let digest = digest.unwrap_or_else(|| panic!("{url}: no Digest in {text}"));
    Some(digest.trim().trim_start_matches("adler32=").to_string())
}

/// What the XRootD client itself (not larmon) says of a root:// file: its adler32 from the
/// server, or `None` when it is not there.
fn xrootd_adler32(url: &str) -> Option<String> {
    let out = Command::new("xrdadler32").arg(url).output().expect("xrdadler32 (xrootd-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success().then(|| text.split_whitespace().next().unwrap_or_default().to_string())
}

/// `larmon transfer --to root://…` against a real XRootD server: every file copied, its adler32
/// computed by the server equal to the catalogue's, nothing partial left; a second pass copies
/// nothing; other bytes under a name are never overwritten; an unreachable server is a visible
/// failure, not a hang.
#[test]
fn transfer_over_root_to_a_real_xrootd_server_checks_adler32_there() {
    if let Some(server) = xrootd_test_url() {
        transfer_to_storage(&server, "xrdfs query checksum root://127.0.0.1:1//");
    }
}

/// The same with `--to http://…` against a real WebDAV server (XRootD's XrdHttp): PUT, the
/// server's adler32 Digest, MOVE.
#[test]
fn transfer_over_webdav_to_a_real_server_checks_adler32_there() {
    if let Some(server) = xrootd_http_test_url() {
        transfer_to_storage(&server, "HTTP HEAD http://127.0.0.1:1/");
    }
}

fn transfer_to_storage(server: &str, dead_server_error: &str) {
    let is_root = server.starts_with("root://");
    let dir = scratch(if is_root { "dm-transfer-xrootd" } else { "dm-transfer-webdav" });
    let db = transfer_fixture(&dir, 4);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let slash = if is_root { "//" } else { "/" };
    let base = format!("{server}{slash}larmon-test/transfer-{}-{nanos}", std::process::id());
    let transfer = |site: &str, to: &str| {
        larmon(&["transfer", "--db", p(&db), "--site", site, "--to", to, "--backoff-s", "0"])
    };
    let first = ok(transfer("EOS", &base));
    assert!(first.contains("4 copied, 0 already there, 0 failed"), "{first}");
    let list = ok(larmon(&["catalog", "--db", p(&db), "list", "--json"]));
    let mut names = Vec::new();
    for line in list.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let name = record["declaration"]["name"].as_str().unwrap().to_string();
        let url = format!("{base}/neardet-2x2-lar-light/{name}");
        assert_eq!(storage_adler32(server, &url).as_deref(), record["adler32"].as_str(), "{url}");
        assert_eq!(storage_adler32(server, &format!("{url}.larmon-partial")), None, "partial");
        let show: Value = serde_json::from_str(&ok(larmon(&[
            "catalog",
            "--db",
            p(&db),
            "show",
            record["did"].as_str().unwrap(),
        ])))
        .unwrap();
        assert_eq!(show["replicas"][0]["location"], json!(url));
        names.push(name);
    }
    assert_eq!(names.len(), 4);
    let again = ok(transfer("EOS", &base));
    assert!(again.contains("0 copied, 0 already there, 0 failed"), "{again}");

    // Another site already holding other bytes under one name: never overwritten.
    let other = format!("{base}-other");
    let squatter = format!("{other}/neardet-2x2-lar-light/{}", names[0]);
    let junk = dir.join("junk");
    std::fs::write(&junk, b"someone else's bytes").unwrap();
    let placed = if is_root {
        Command::new("xrdcp").args(["--silent", p(&junk), &squatter]).status().unwrap()
    } else {
        Command::new("curl").args(["-sf", "-T", p(&junk), &squatter]).status().unwrap()
    };
    assert!(placed.success());
    let squatter_adler = storage_adler32(server, &squatter);
    assert!(squatter_adler.is_some());
    let out = transfer("OTHER", &other);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not overwritten"));
    assert_eq!(storage_adler32(server, &squatter), squatter_adler);
    let status = ok(larmon(&["transfer", "--db", p(&db), "--site", "OTHER", "--status"]));
    assert!(status.starts_with("OTHER: 3 done, 0 queued, 1 failed"), "{status}");

    // Nobody listening: each file fails at once with the client's error, kept for --status.
    let started = Instant::now();
    let dead =
        if is_root { "root://127.0.0.1:1//larmon-test" } else { "http://127.0.0.1:1/larmon-test" };
    let out = transfer("NOWHERE", dead);
    assert!(!out.status.success());
    let status = ok(larmon(&["transfer", "--db", p(&db), "--site", "NOWHERE", "--status"]));
    assert!(status.starts_with("NOWHERE: 0 done, 0 queued, 4 failed"), "{status}");
    assert!(status.contains(dead_server_error), "{status}");
    println!("4 failures against a closed port took {:?}", started.elapsed());
}

/// A small REST helper for the test's own set-up calls (scope, RSE, protocol, quota).
struct Rucio {
    url: String,
    token: String,
    agent: ureq::Agent,
}

impl Rucio {
    fn login(url: &str) -> Self {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let response = agent
            .get(format!("{url}/auth/userpass"))
            .header("X-Rucio-Account", "root")
            .header("X-Rucio-Username", "ddmlab")
            .header("X-Rucio-Password", "secret")
            .call()
            .unwrap();
        let token = response.headers()["X-Rucio-Auth-Token"].to_str().unwrap().to_string();
        Self { url: url.into(), token, agent }
    }
    fn post(&self, path: &str, body: Value) -> (u16, String) {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("X-Rucio-Auth-Token", &self.token)
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }
    fn get(&self, path: &str) -> Vec<Value> {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.url))
            .header("X-Rucio-Auth-Token", &self.token)
            .call()
            .unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[test]
fn rucio_registration_against_a_real_server_is_complete_and_idempotent() {
    let Ok(url) = std::env::var("RUCIO_TEST_URL") else {
        println!(
            "SKIPPED: RUCIO_TEST_URL is not set (bash .ci/rucio-local.sh start, then export RUCIO_TEST_URL=http://127.0.0.1:18080)"
        );
        return;
    };
    let dir = scratch("dm-rucio");
    let daq = dir.join("daq");
    // A run number of its own: the server outlives the test, and HDF5 files of the same run
    // simulated again differ in bytes (creation times) — the same DIDs would be (rightly)
    // refused as conflicts.
    let run = 100 + std::process::id() % 1_000_000;
    let run_text = run.to_string();
    ok(larmon(&[
        "simulate",
        "--run",
        &run_text,
        "--duration-s",
        "3",
        "--files",
        "3",
        "--out",
        p(&daq),
    ]));
    let db = dir.join("catalog.sqlite");
    let mut add = vec!["catalog".to_string(), "--db".into(), p(&db).into(), "add".into()];
    add.push("--stable-s".into());
    add.push("0".into());
    for entry in std::fs::read_dir(&daq).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "h5") {
            add.push(p(&path).into());
        }
    }
    ok(larmon(&add.iter().map(String::as_str).collect::<Vec<_>>()));

    let rucio = Rucio::login(&url);
    let scope = "neardet-2x2-lar-charge";
    let (drop_rse, target_rse) = rucio_rses(&rucio, &dir, "");

    let register = || {
        let out = Command::new(env!("CARGO_BIN_EXE_larmon"))
            .args(["rucio", "--db", p(&db), "--url", &url, "--username", "ddmlab"])
            .args(["--rse", &drop_rse, "--rule-rse", &target_rse])
            .env("RUCIO_PASSWORD", "secret")
            .output()
            .unwrap();
        ok(out)
    };
    let first = register();
    assert_eq!(first.matches("(copied)").count(), 3, "{first}");
    assert_eq!(first.matches("new rule").count(), 1, "{first}");

    let dataset = format!("neardet-2x2-lar-charge_run{run:07}");
    let check = |label: &str| {
        let replicas = rucio.get(&format!("/replicas/{scope}/{dataset}"));
        assert_eq!(replicas.len(), 3, "{label}: {replicas:?}");
        let content = rucio.get(&format!("/dids/{scope}/{dataset}/dids"));
        assert_eq!(content.len(), 3, "{label}: attached {content:?}");
        let rules = rucio.get(&format!("/dids/{scope}/{dataset}/rules"));
        assert_eq!(rules.len(), 1, "{label}: {rules:?}");
        assert_eq!(rules[0]["rse_expression"], json!(target_rse));
        for replica in &replicas {
            let name = replica["name"].as_str().unwrap();
            let file = daq.join(name);
            let (adler, size) = Adler32::of_file(&file).unwrap();
            assert_eq!(replica["bytes"], json!(size), "{label}: {name}");
            assert_eq!(replica["adler32"], json!(adler.to_string()), "{label}: {name}");
            assert_eq!(replica["states"][&drop_rse], "AVAILABLE", "{label}: {replica}");
            // The bytes are really at the drop RSE's deterministic path, verified.
            let pfn = replica["rses"][&drop_rse][0].as_str().unwrap();
            let placed = PathBuf::from(pfn.trim_start_matches("file://localhost"));
            assert_eq!(Adler32::of_file(&placed).unwrap(), (adler, size), "{label}: {pfn}");
        }
    };
    check("first run");
    let second = register();
    assert_eq!(second.matches("(already there)").count(), 3, "{second}");
    assert!(!second.contains("new rule"), "{second}");
    check("second run");
    // --status shows what Rucio holds: each file AVAILABLE at the drop RSE, the dataset's rule.
    let status = |db: &Path| {
        Command::new(env!("CARGO_BIN_EXE_larmon"))
            .args(["rucio", "--db", p(db), "--url", &url, "--username", "ddmlab", "--status"])
            .env("RUCIO_PASSWORD", "secret")
            .output()
            .unwrap()
    };
    let shown = ok(status(&db));
    assert_eq!(shown.matches(&format!("{drop_rse}: AVAILABLE")).count(), 3, "{shown}");
    assert!(shown.contains(&format!("on {scope}:{dataset} -> {target_rse}: ")), "{shown}");
    assert!(shown.contains("3 files, 3 with an AVAILABLE replica; 1 rules, 0 stuck"), "{shown}");
    // A catalogued file Rucio does not know is a problem --status reports (exit ≠ 0).
    let unknown = dir.join("unknown").join(format!("binary-{run:07}-never-registered.h5"));
    std::fs::create_dir_all(unknown.parent().unwrap()).unwrap();
    file_with_sidecar(&unknown, b"never registered", scope, u64::from(run), (0.0, 1.0));
    let db3 = dir.join("catalog3.sqlite");
    ok(larmon(&["catalog", "--db", p(&db3), "add", p(&unknown)]));
    let out = status(&db3);
    assert!(!out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("never-registered.h5  not in Rucio"), "{shown}");
    // The same name with other bytes is refused before anything is registered (Rucio itself
    // would answer 201 and keep the old values).
    let impostor_dir = dir.join("impostor");
    std::fs::create_dir_all(&impostor_dir).unwrap();
    let first_name = std::fs::read_dir(&daq)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".h5"))
        .min()
        .unwrap();
    let impostor = impostor_dir.join(&first_name);
    file_with_sidecar(&impostor, b"not the real file", scope, u64::from(run), (0.0, 1.0));
    let db2 = dir.join("catalog2.sqlite");
    ok(larmon(&["catalog", "--db", p(&db2), "add", p(&impostor)]));
    let refused = Command::new(env!("CARGO_BIN_EXE_larmon"))
        .args(["rucio", "--db", p(&db2), "--url", &url, "--username", "ddmlab"])
        .args(["--rse", &drop_rse])
        .env("RUCIO_PASSWORD", "secret")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Rucio already has"));
    check("after the impostor");

    // The catalog records the Rucio replica of every file.
    let list = ok(larmon(&["catalog", "--db", p(&db), "list", "--json"]));
    for line in list.lines() {
        let did = serde_json::from_str::<Value>(line).unwrap()["did"].as_str().unwrap().to_string();
        let show: Value =
            serde_json::from_str(&ok(larmon(&["catalog", "--db", p(&db), "show", &did]))).unwrap();
        let sites: Vec<&str> = show["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["site"].as_str())
            .collect();
        assert_eq!(sites, vec![drop_rse.as_str()], "{did}");
    }
}

/// `larmon rucio` on an RSE whose storage is a real XRootD server: each file placed at the
/// root:// PFN Rucio's lfns2pfns gives, its adler32 checked by the server (and again here with
/// the XRootD client), registered AVAILABLE there; a second pass copies nothing.
#[test]
fn rucio_places_files_on_an_xrootd_rse_and_checks_adler32_there() {
    if let Some(server) = xrootd_test_url() {
        rucio_places_files_on_storage(&server, "X");
    }
}

/// The same on an RSE whose protocol is WebDAV (http, XRootD's XrdHttp): placed with PUT at
/// the PFN Rucio gives, adler32 from the server's Digest, AVAILABLE; a second pass copies
/// nothing.
#[test]
fn rucio_places_files_on_a_webdav_rse_and_checks_adler32_there() {
    if let Some(server) = xrootd_http_test_url() {
        rucio_places_files_on_storage(&server, "W");
    }
}

/// What the storage itself (not larmon) says of a file: its adler32, or `None` when absent —
/// `xrdadler32` for root:// (Rucio's one-slash PFN read as the absolute path), a HEAD with
/// `Want-Digest: adler32` by curl for http://.
fn storage_adler32(server: &str, url: &str) -> Option<String> {
    if server.starts_with("root://") {
        let path = url.strip_prefix(server).unwrap_or_else(|| panic!("{url}"));
        return xrootd_adler32(&format!("{server}//{}", path.trim_start_matches('/')));
    }
    webdav_adler32(url)
}

fn rucio_places_files_on_storage(server: &str, tag: &str) {
    let Ok(url) = std::env::var("RUCIO_TEST_URL") else {
        println!("SKIPPED: RUCIO_TEST_URL is not set (bash .ci/rucio-local.sh start)");
        return;
    };
    let dir = scratch(&format!("dm-rucio-storage-{tag}"));
    let daq = dir.join("daq");
    let run = 3_000_000 + std::process::id() % 1_000_000 + if tag == "W" { 1 } else { 0 };
    let run_text = run.to_string();
    ok(larmon(
        &["simulate", "--run", &run_text, "--duration-s", "3", "--files", "2"]
            .into_iter()
            .chain(["--no-light", "--out", p(&daq)])
            .collect::<Vec<_>>(),
    ));
    let db = dir.join("catalog.sqlite");
    let mut add = vec!["catalog", "--db", p(&db), "add", "--stable-s", "0"];
    let files: Vec<PathBuf> = std::fs::read_dir(&daq)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|e| e == "h5"))
        .collect();
    assert_eq!(files.len(), 2);
    add.extend(files.iter().map(|f| p(f)));
    ok(larmon(&add));
    let rucio = Rucio::login(&url);
    let (drop_rse, target_rse) = rucio_rses_on(&rucio, &dir, tag, Some(server));
    let register = || {
        ok(Command::new(env!("CARGO_BIN_EXE_larmon"))
            .args(["rucio", "--db", p(&db), "--url", &url, "--username", "ddmlab"])
            .args(["--rse", &drop_rse, "--rule-rse", &target_rse])
            .env("RUCIO_PASSWORD", "secret")
            .output()
            .unwrap())
    };
    let first = register();
    assert_eq!(first.matches("(copied)").count(), 2, "{first}");
    let scope = "neardet-2x2-lar-charge";
    let dataset = format!("{scope}_run{run:07}");
    let replicas = rucio.get(&format!("/replicas/{scope}/{dataset}"));
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    for replica in &replicas {
        let name = replica["name"].as_str().unwrap();
        let (adler, _) = Adler32::of_file(&daq.join(name)).unwrap();
        assert_eq!(replica["states"][&drop_rse], "AVAILABLE", "{replica}");
        let pfn = replica["rses"][&drop_rse][0].as_str().unwrap();
        let path = pfn.strip_prefix(server).unwrap_or_else(|| panic!("{pfn}"));
        let path = path.trim_start_matches('/');
        assert!(path.starts_with(&format!("larmon-test/{drop_rse}/")), "{pfn}");
        assert!(pfn.ends_with(&format!("/{name}")), "{pfn}");
        assert_eq!(storage_adler32(server, pfn), Some(adler.to_string()), "{pfn}");
        let partial = format!("{pfn}.larmon-partial");
        assert_eq!(storage_adler32(server, &partial), None, "{pfn}");
        assert!(first.contains(pfn), "the PFN is printed: {first}");
    }
    let second = register();
    assert_eq!(second.matches("(already there)").count(), 2, "{second}");
}

/// Light files are declared from their data too: run and part from the MPD run start block,
/// times from the first and last event, events; and they pair with the charge file of their run.
#[test]
fn light_metadata_comes_from_the_data_and_pairs_with_charge() {
    let dir = scratch("dm-light");
    let sim = larmon_tests::simulated_light_run(&dir.join("sim"), 1, 5, 1);
    let (light, truth) = (sim.light, sim.light_truth_path);
    let truth = read_json(&truth);
    let events = truth["events"].as_array().unwrap();
    let declaration: Value =
        serde_json::from_str(&ok(larmon(&["meta", p(&light), "--stable-s", "0"]))).unwrap();
    let m = &declaration["metadata"];
    assert_eq!(declaration["namespace"], "neardet-2x2-lar-light");
    assert_eq!(m["core.runs"], json!([truth["run"]["run_number"]]));
    assert_eq!(
        m["core.runs_subruns"],
        json!([truth["run"]["run_number"].as_u64().unwrap() * 100_000 + 1])
    );
    let ms = |e: &Value| e["unix_ms"].as_f64().unwrap() / 1e3;
    assert_eq!(m["core.start_time"], json!(ms(&events[0])));
    assert_eq!(m["core.end_time"], json!(ms(events.last().unwrap())));
    assert_eq!(m["core.event_count"], json!(events.len()));
    assert_eq!(m["core.file_format"], "binary");
    assert_eq!(
        m["dune.light_missing_board_events"],
        json!(truth["faults"]["missing_board_events"].as_array().unwrap().len())
    );

    // The charge file of the same run (named as the DAQ names it) and the light file pair up.
    let charge = dir.join("binary-0000001-2023_03_15_02_40_01_UTC.h5");
    std::fs::copy(&sim.charge[0], &charge).unwrap();
    let db = dir.join("catalog.sqlite");
    ok(larmon(&["catalog", "--db", p(&db), "add", "--stable-s", "0", p(&charge), p(&light)]));
    let association: Value =
        serde_json::from_str(&ok(larmon(&["catalog", "--db", p(&db), "associate", "--run", "1"])))
            .unwrap();
    let links = association[0]["links"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{association}");
    assert_eq!(links[0]["kind"], "light");
    assert!(links[0]["overlap_s"].as_f64().unwrap() > 3.0, "{association}");
    assert_eq!(association[0]["unmatched"], json!([]));
}

/// A raw file's declaration says what calibrates it (the detector description hash its run
/// report records, the pedestal file's SHA-256, the drift conditions) and, with --dq-reports,
/// the run's quality: the automatic flag, then a shifter's sign-off, decide
/// core.file_content_status. A sidecar already there is never overwritten silently.
#[test]
fn a_declaration_carries_its_calibration_and_the_runs_quality_and_keeps_sidecars() {
    use sha2::Digest;
    let dir = scratch("dm-calibration-quality");
    let file = dir.join("binary-0000042-2023_03_15_09_40_00_UTC.h5");
    std::fs::copy(data("small-raw.h5"), &file).unwrap();
    let pedestals = data("real/ped-iog1-excerpt.json");
    let config = dir.join("larmon.toml");
    std::fs::write(&config, format!("[charge]\npedestal_file = {pedestals:?}\n")).unwrap();
    let out = dir.join("dqm");
    run_packet_rate_only(&dir, &[&file], &out, &["--run", "run-42", "--config", p(&config)]);
    let report = read_json(&out.join("run-42/report.json"));
    let flag = report["quality"]["flag"].as_str().unwrap().to_string();
    let meta = || -> Value {
        let args = ["meta", p(&file), "--stable-s", "0", "--config", p(&config)];
        serde_json::from_str(&ok(larmon(&[&args[..], &["--dq-reports", p(&out)]].concat())))
            .unwrap()
    };
    let m = meta()["metadata"].clone();
    assert_eq!(m["dune.detector"], "2x2");
    assert_eq!(m["dune.detector_sha256"], report["provenance"]["detector_sha256"]);
    let pedestal_sha = format!("{:x}", sha2::Sha256::digest(std::fs::read(&pedestals).unwrap()));
    assert_eq!(m["dune.pedestal_sha256"], json!(pedestal_sha));
    assert_eq!(m["dune.e_field_kv_cm"], json!(0.5));
    let velocity = m["dune.drift_velocity_mm_us"].as_f64().unwrap();
    assert!((1.5..1.7).contains(&velocity), "drift velocity {velocity} mm/µs at 0.5 kV/cm");
    assert_eq!(
        (m["dune.dq_run"].as_str(), m["dune.dq_flag"].as_str()),
        (Some("run-42"), Some(&*flag))
    );
    let automatic = if flag == "error" { "bad" } else { "good" };
    assert_eq!(m["core.file_content_status"], automatic);
    assert!(m.get("dune.dq_signoff").is_none());

    // The sidecar is written once; the same declaration leaves it alone.
    let sidecar_args = ["meta", p(&file), "--stable-s", "0", "--config", p(&config)];
    let with_dq = [&sidecar_args[..], &["--dq-reports", p(&out), "--sidecar"]].concat();
    assert!(ok(larmon(&with_dq)).trim().ends_with(".h5.json"));
    assert!(ok(larmon(&with_dq)).contains("(unchanged)"));

    // A shifter's decision wins over the automatic flag; the sidecar then differs and is
    // refused with the keys named, until --replace-sidecar.
    ok(larmon(&[
        "signoff",
        p(&out),
        "run-42",
        "--flag",
        "suspect",
        "--by",
        "ana",
        "--comment",
        "noisy tile",
    ]));
    let m = meta()["metadata"].clone();
    assert_eq!(
        (m["core.file_content_status"].as_str(), m["dune.dq_signoff"].as_str()),
        (Some("suspect"), Some("suspect"))
    );
    let sidecar = dir.join("binary-0000042-2023_03_15_09_40_00_UTC.h5.json");
    let before = std::fs::read(&sidecar).unwrap();
    let refused = larmon(&with_dq);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("core.file_content_status") && stderr.contains("dune.dq_signoff"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&sidecar).unwrap(), before, "the sidecar is left as it was");
    let replaced = ok(larmon(&[&with_dq[..], &["--replace-sidecar"]].concat()));
    assert!(replaced.contains("(replaced)"), "{replaced}");
    assert_eq!(read_json(&sidecar)["metadata"]["dune.dq_signoff"], "suspect");

    // A file no report lists keeps the default status, and says so.
    let other = dir.join("binary-0000043-2023_03_15_09_50_00_UTC.h5");
    std::fs::copy(data("small-raw.h5"), &other).unwrap();
    let out_other = larmon(&["meta", p(&other), "--stable-s", "0", "--dq-reports", p(&out)]);
    let declared: Value = serde_json::from_str(&ok(out_other.clone())).unwrap();
    assert_eq!(declared["metadata"]["core.file_content_status"], "good");
    assert!(declared["metadata"].get("dune.dq_flag").is_none());
    assert!(String::from_utf8_lossy(&out_other.stderr).contains("no run report in"));
}

/// `larmon run FILES --out OUT` with only the bundled packet-rate plugin: a quick run whose
/// report the data-management commands read; `extra` adds options (`--run`, `--config`).
fn run_packet_rate_only(dir: &Path, files: &[&Path], out: &Path, extra: &[&str]) {
    let no_plugins = dir.join("no-plugins");
    std::fs::create_dir_all(&no_plugins).unwrap();
    let repo = larmon_tests::repo();
    let plugin = repo.join("target/wasm32-wasip2/plugin/larmon_plugin_packet_rate.wasm");
    let cache = repo.join("target/test-plugin-cache");
    let mut args = vec!["run"];
    args.extend(files.iter().map(|f| p(f)));
    args.extend(["--out", p(out), "--plugin-dir", p(&no_plugins), "--plugin", p(&plugin)]);
    args.extend(["--cache-dir", p(&cache)]);
    args.extend(extra);
    ok(larmon(&args));
}

/// A run's DQ outputs become data: `larmon pack` writes its report and figures as one
/// reproducible `dqm-<run>.tar.gz` declared with the run's data files as parents; the catalog
/// takes it from its verified sidecar and `transfer` replicates it, adler32 checked, like data.
#[test]
fn a_runs_dq_outputs_are_packed_declared_with_their_parents_and_replicated() {
    let dir = scratch("dm-dq-pack");
    let daq = dir.join("daq");
    std::fs::create_dir_all(&daq).unwrap();
    let charge = daq.join("binary-0000042-2023_03_15_09_40_00_UTC.h5");
    std::fs::copy(data("small-raw.h5"), &charge).unwrap();
    let out = dir.join("dqm");
    run_packet_rate_only(&dir, &[&charge], &out, &["--run", "run-42"]);
    // A reviewer's version is not the official report: it stays out of the pack.
    std::fs::create_dir_all(out.join("run-42/versions/ana")).unwrap();
    std::fs::write(out.join("run-42/versions/ana/report.json"), "{}").unwrap();
    let packs = dir.join("packs");
    let pack_args = ["pack", p(&out), "run-42", "--into", p(&packs), "--sidecar"];
    let said = ok(larmon(&pack_args));
    let pack = packs.join("dqm-run-42.tar.gz");
    assert!(said.starts_with(p(&pack)), "{said}");
    let sidecar = read_json(&packs.join("dqm-run-42.tar.gz.json"));
    assert_eq!(sidecar["namespace"], "neardet-2x2-lar");
    assert_eq!(
        sidecar["parents"],
        json!([{"did": "neardet-2x2-lar-charge:binary-0000042-2023_03_15_09_40_00_UTC.h5"}])
    );
    let m = &sidecar["metadata"];
    assert_eq!((m["core.data_tier"].as_str(), m["core.runs"].clone()), (Some("dqm"), json!([42])));
    let report = read_json(&out.join("run-42/report.json"));
    assert_eq!(m["dune.dq_flag"], report["quality"]["flag"]);
    assert_eq!(m["dune.detector_sha256"], report["provenance"]["detector_sha256"]);
    assert_eq!(m["core.event_count"], report["host"]["triggered_events"]);

    // The pack holds the report and every figure file of the run, under the run's name.
    let listing = Command::new("tar").arg("tzf").arg(&pack).output().unwrap();
    let listed: Vec<String> =
        String::from_utf8_lossy(&listing.stdout).lines().map(str::to_owned).collect();
    let mut expected: Vec<String> = walk(&out.join("run-42"))
        .into_iter()
        .filter(|f| !f.starts_with("versions/"))
        .map(|f| format!("run-42/{f}"))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(listed.contains(&"run-42/report.json".to_string()));

    // Packing the unchanged run again gives the same bytes: the sidecar stays.
    let bytes = std::fs::read(&pack).unwrap();
    assert!(ok(larmon(&pack_args)).contains("(unchanged)"));
    assert_eq!(std::fs::read(&pack).unwrap(), bytes);

    // Catalogued from its verified sidecar and replicated like data.
    let db = dir.join("dm.sqlite");
    let added = ok(larmon(&["catalog", "--db", p(&db), "add", "--stable-s", "0", p(&pack)]));
    assert!(added.contains("1 added"), "{added}");
    let nersc = dir.join("nersc");
    ok(larmon(&["transfer", "--db", p(&db), "--site", "NERSC", "--to", p(&nersc)]));
    let replica = nersc.join("neardet-2x2-lar/dqm-run-42.tar.gz");
    assert_eq!(std::fs::read(&replica).unwrap(), bytes);
    let status = ok(larmon(&["transfer", "--db", p(&db), "--site", "NERSC", "--status"]));
    assert!(status.starts_with("NERSC: 1 done, 0 queued, 0 failed"), "{status}");
}

/// Files under `dir`, relative, with `/` separators.
fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            found.extend(walk(&path).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            found.push(name);
        }
    }
    found
}

/// `larmon daq`: one pass declares, catalogues and replicates every complete DAQ file (charge
/// and light); files are "processed" once a run report lists them; the buffer clean-up removes
/// a file only after its remote copy verifies again, and keeps one whose replica was damaged;
/// a chain killed with SIGKILL mid-pass loses nothing; a repeated pass changes nothing.
#[test]
fn the_daq_chain_declares_replicates_processes_and_cleans_the_buffer_safely() {
    let dir = scratch("dm-daq-chain");
    let daq = dir.join("daq");
    ok(larmon(&["simulate", "--run", "61", "--duration-s", "4", "--files", "2", "--out", p(&daq)]));
    for entry in std::fs::read_dir(&daq).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with("truth.json") {
            std::fs::remove_file(path).unwrap(); // not data
        }
    }
    let data_files = || -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&daq)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().ends_with(".json"))
            .collect();
        files.sort();
        files
    };
    let originals: Vec<(PathBuf, Vec<u8>)> =
        data_files().into_iter().map(|f| (f.clone(), std::fs::read(&f).unwrap())).collect();
    assert_eq!(originals.len(), 3, "2 charge files and 1 light file: {originals:?}");
    let (db, nersc, dqm) = (dir.join("dm.sqlite"), dir.join("nersc"), dir.join("dqm"));
    let chain = |extra: &[&str]| {
        let mut args = vec!["daq", p(&daq), "--db", p(&db), "--site", "NERSC", "--to", p(&nersc)];
        args.extend(["--dq-out", p(&dqm), "--stable-s", "0", "--backoff-s", "0"]);
        args.extend(extra);
        larmon(&args)
    };

    // Killed with SIGKILL during its first passes, the chain loses nothing.
    for kill_after_ms in [150, 400] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_larmon"))
            .args(["daq", p(&daq), "--db", p(&db), "--site", "NERSC", "--to", p(&nersc)])
            .args(["--stable-s", "0", "--poll-s", "0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let first = ok(chain(&["--once"]));
    let status = read_json(&dqm.join("daq-status.json"));
    assert_eq!(status["done"]["replicate"], 3, "{first}\n{status}");
    assert_eq!(status["backlog"]["process"], 3, "no report lists them yet: {status}");
    for (file, bytes) in &originals {
        let name = file.file_name().unwrap().to_str().unwrap();
        let namespace = if name.ends_with(".data") {
            "neardet-2x2-lar-light"
        } else {
            "neardet-2x2-lar-charge"
        };
        assert_eq!(&std::fs::read(nersc.join(namespace).join(name)).unwrap(), bytes, "{name}");
    }
    let listed = ok(larmon(&["catalog", "--db", p(&db), "list", "--json"]));
    assert_eq!(listed.lines().count(), 3, "each file catalogued once: {listed}");

    // The DQ processes the run; a damaged replica keeps its file in the buffer.
    let files = data_files();
    run_packet_rate_only(&dir, &files.iter().map(PathBuf::as_path).collect::<Vec<_>>(), &dqm, &[]);
    let damaged = &originals[0].0;
    let damaged_replica = nersc.join("neardet-2x2-lar-charge").join(damaged.file_name().unwrap());
    std::fs::write(&damaged_replica, b"a damaged copy").unwrap();
    let cleaning = chain(&["--once", "--clean-buffer-after-s", "0"]);
    assert!(!cleaning.status.success(), "a failure is reported");
    let stderr = String::from_utf8_lossy(&cleaning.stderr);
    assert!(stderr.contains("clean failed") && stderr.contains("kept"), "{stderr}");
    assert_eq!(
        data_files(),
        std::slice::from_ref(damaged),
        "only the file with a damaged replica is kept"
    );
    let status = read_json(&dqm.join("daq-status.json"));
    assert_eq!(
        (status["done"]["process"].as_u64(), status["done"]["clean"].as_u64()),
        (Some(3), Some(2)),
        "{status}"
    );

    // The replica repaired, the next pass cleans it; one more pass changes nothing.
    std::fs::write(&damaged_replica, &originals[0].1).unwrap();
    ok(chain(&["--once", "--clean-buffer-after-s", "0"]));
    assert!(data_files().is_empty());
    let again = ok(chain(&["--once", "--clean-buffer-after-s", "0"]));
    assert!(
        !again.contains("declared") && !again.contains("replicated") && !again.contains("cleaned"),
        "{again}"
    );
    let status = read_json(&dqm.join("daq-status.json"));
    assert_eq!(status["done"]["clean"], 3);
    assert!(status["backlog"].as_object().unwrap().values().all(|n| n == 0), "{status}");
    let shown = ok(larmon(&[
        "daq",
        p(&daq),
        "--db",
        p(&db),
        "--site",
        "NERSC",
        "--dq-out",
        p(&dqm),
        "--status",
    ]));
    assert!(
        shown.contains(
            "waiting: arriving 0, declare 0, replicate 0, register 0, process 0, clean 0"
        ),
        "{shown}"
    );
}

/// `larmon rucio` logs in as the labs' Rucio servers are used: with an X.509 proxy (RFC 3820,
/// as voms-proxy-init writes it) and with a user certificate at `/auth/x509` over HTTPS (the
/// server checked against X509_CERT_DIR), and with a bearer token found by WLCG Bearer Token
/// Discovery. The real Rucio behind `.ci/rucio-local.sh`'s TLS front (RUCIO_X509_TEST_URL,
/// RUCIO_X509_TEST_DIR) registers with the proxy; the other logins read it back; a refused
/// token, a missing proxy and an untrusted server fail with what to do.
#[test]
fn rucio_logs_in_with_an_x509_proxy_a_user_certificate_or_a_bearer_token() {
    let (Ok(url), Ok(tls_url), Ok(x509)) = (
        std::env::var("RUCIO_TEST_URL"),
        std::env::var("RUCIO_X509_TEST_URL"),
        std::env::var("RUCIO_X509_TEST_DIR"),
    ) else {
        println!(
            "SKIPPED: RUCIO_TEST_URL, RUCIO_X509_TEST_URL or RUCIO_X509_TEST_DIR is not set (bash .ci/rucio-local.sh start prints them)"
        );
        return;
    };
    let x509 = PathBuf::from(x509);
    let dir = scratch("dm-rucio-auth");
    let daq = dir.join("daq");
    let run = 5_000_000 + std::process::id() % 1_000_000;
    let run_text = run.to_string();
    ok(larmon(
        &["simulate", "--run", &run_text, "--duration-s", "2", "--files", "1", "--no-light"]
            .into_iter()
            .chain(["--out", p(&daq)])
            .collect::<Vec<_>>(),
    ));
    let db = dir.join("catalog.sqlite");
    let file = std::fs::read_dir(&daq)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| f.extension().is_some_and(|e| e == "h5"))
        .unwrap();
    ok(larmon(&["catalog", "--db", p(&db), "add", "--stable-s", "0", p(&file)]));
    let rucio = Rucio::login(&url);
    let (drop_rse, target_rse) = rucio_rses(&rucio, &dir, "A");
    // Only what each case sets: no credential of the machine running the test leaks in.
    let larmon_as = |auth: &[&str], env: &[(&str, &Path)], extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_larmon"));
        for var in ["X509_USER_PROXY", "X509_USER_CERT", "X509_USER_KEY", "X509_CERT_DIR"] {
            command.env_remove(var);
        }
        for var in ["BEARER_TOKEN", "BEARER_TOKEN_FILE", "RUCIO_PASSWORD"] {
            command.env_remove(var);
        }
        command.env("XDG_RUNTIME_DIR", &dir).env("X509_CERT_DIR", x509.join("ca"));
        command.args(["rucio", "--db", p(&db)]).args(auth).args(extra);
        for (var, value) in env {
            command.env(var, value);
        }
        command.output().unwrap()
    };
    let status = ["--status"];

    // The proxy: registered over HTTPS.
    let proxy = x509.join("proxy.pem");
    let as_proxy = ["--url", &tls_url, "--auth-type", "x509_proxy"];
    let registered = ok(larmon_as(
        &as_proxy,
        &[("X509_USER_PROXY", &proxy)],
        &["--rse", &drop_rse, "--rule-rse", &target_rse],
    ));
    assert!(registered.contains("(copied)"), "{registered}");
    let shown = ok(larmon_as(&as_proxy, &[("X509_USER_PROXY", &proxy)], &status));
    assert!(shown.contains(&format!("{drop_rse}: AVAILABLE")), "{shown}");
    // The user certificate and key.
    let (cert, key) = (x509.join("usercert.pem"), x509.join("userkey.pem"));
    let as_user = ["--url", &tls_url, "--auth-type", "x509"];
    let shown =
        ok(larmon_as(&as_user, &[("X509_USER_CERT", &cert), ("X509_USER_KEY", &key)], &status));
    assert!(shown.contains(&format!("{drop_rse}: AVAILABLE")), "{shown}");
    // A token in the WLCG places: BEARER_TOKEN_FILE, then $XDG_RUNTIME_DIR/bt_u<uid>.
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{}\n", rucio.token)).unwrap();
    let as_token = ["--url", &url, "--auth-type", "token"];
    let shown = ok(larmon_as(&as_token, &[("BEARER_TOKEN_FILE", &token_file)], &status));
    assert!(shown.contains(&format!("{drop_rse}: AVAILABLE")), "{shown}");
    use std::os::unix::fs::MetadataExt as _;
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    std::fs::write(dir.join(format!("bt_u{uid}")), &rucio.token).unwrap();
    let shown = ok(larmon_as(&as_token, &[], &status));
    assert!(shown.contains(&format!("{drop_rse}: AVAILABLE")), "{shown}");

    // Failures say what to do.
    let failed = |out: Output| {
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    std::fs::write(&token_file, "not-a-token").unwrap();
    let refused = failed(larmon_as(&as_token, &[("BEARER_TOKEN_FILE", &token_file)], &status));
    assert!(refused.contains("refused the bearer token"), "{refused}");
    let missing = failed(larmon_as(&as_proxy, &[("X509_USER_PROXY", &dir.join("none"))], &status));
    assert!(missing.contains("none"), "{missing}");
    let plain = ["--url", &url, "--auth-type", "x509"];
    let not_tls =
        failed(larmon_as(&plain, &[("X509_USER_CERT", &cert), ("X509_USER_KEY", &key)], &status));
    assert!(not_tls.contains("is not an https:// server"), "{not_tls}");
    let no_user = failed(larmon_as(&as_user, &[("HOME", &dir)], &status));
    assert!(no_user.contains(".globus/usercert.pem"), "{no_user}");
    let untrusted = dir.join("other-ca");
    std::fs::create_dir_all(&untrusted).unwrap();
    std::fs::copy(&cert, untrusted.join("not-a-ca.pem")).unwrap();
    let distrusted = failed(larmon_as(
        &as_proxy,
        &[("X509_USER_PROXY", &proxy), ("X509_CERT_DIR", &untrusted)],
        &status,
    ));
    assert!(distrusted.to_lowercase().contains("certificate"), "{distrusted}");
}

/// Set-up an operator does once: the charge scope, two POSIX RSEs (drop and target) under
/// `dir`, quotas. Unique names per test process (`tag` tells tests apart), as the server
/// outlives the test.
fn rucio_rses(rucio: &Rucio, dir: &Path, tag: &str) -> (String, String) {
    rucio_rses_on(rucio, dir, tag, None)
}

/// [`rucio_rses`], with the drop RSE's storage on an XRootD server (`root://host:port`) when
/// `xrootd` is given: a root:// protocol with Rucio's xrootd implementation, so its PFNs are
/// `root://host:port//<prefix>/<scope>/<hash>/<name>`.
fn rucio_rses_on(rucio: &Rucio, dir: &Path, tag: &str, xrootd: Option<&str>) -> (String, String) {
    let tag = format!("{:X}{tag}", std::process::id());
    let (drop_rse, target_rse) = (format!("DROP{tag}"), format!("NERSC{tag}"));
    // The scopes of charge files and of DQ packs (the combined detector's namespace).
    for scope in ["neardet-2x2-lar-charge", "neardet-2x2-lar"] {
        let (status, body) = rucio.post(&format!("/scopes/root/{scope}"), json!({}));
        assert!(status == 201 || body.contains("Duplicate"), "{status} {body}");
    }
    for rse in [&drop_rse, &target_rse] {
        let prefix = dir.join("rse").join(rse);
        let server = xrootd.filter(|_| *rse == drop_rse);
        assert_eq!(
            rucio
                .post(&format!("/rses/{rse}"), json!({"deterministic": true, "rse_type": "DISK"}))
                .0,
            201
        );
        let domains = json!({"lan": {"read": 1, "write": 1, "delete": 1},
                             "wan": {"read": 1, "write": 1, "delete": 1}});
        let (scheme, protocol) = match server {
            Some(server) => {
                // root://host:port (XRootD) or http(s)://host:port (WebDAV).
                let (scheme, rest) = server.split_once("://").unwrap();
                let (host, port) = rest.split_once(':').unwrap();
                let implementation = if scheme == "root" {
                    "rucio.rse.protocols.xrootd.Default"
                } else {
                    "rucio.rse.protocols.webdav.Default"
                };
                let protocol = json!({"scheme": scheme, "hostname": host,
                    "port": port.trim_end_matches('/').parse::<u16>().unwrap(),
                    "prefix": format!("/larmon-test/{rse}"),
                    "impl": implementation, "domains": domains});
                (scheme, protocol)
            }
            None => {
                let protocol = json!({"scheme": "file", "hostname": "localhost", "port": 0,
                    "prefix": p(&prefix), "impl": "rucio.rse.protocols.posix.Default",
                    "domains": domains});
                ("file", protocol)
            }
        };
        let (status, body) = rucio.post(&format!("/rses/{rse}/protocols/{scheme}"), protocol);
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            rucio
                .post(
                    &format!("/accounts/root/limits/local/{rse}"),
                    json!({"bytes": 1_000_000_000_000u64})
                )
                .0,
            201
        );
    }
    (drop_rse, target_rse)
}

/// `larmon daq --rucio-url …`: the chain registers every replicated file in a real Rucio (on
/// a file RSE) and the buffer clean-up waits for it; a second pass registers nothing again.
#[test]
fn the_daq_chain_registers_its_files_in_a_real_rucio() {
    let Ok(url) = std::env::var("RUCIO_TEST_URL") else {
        println!("SKIPPED: RUCIO_TEST_URL is not set (bash .ci/rucio-local.sh start)");
        return;
    };
    let dir = scratch("dm-daq-rucio");
    let daq = dir.join("daq");
    let run = 2_000_000 + std::process::id() % 1_000_000;
    let run_text = run.to_string();
    ok(larmon(
        &["simulate", "--run", &run_text, "--duration-s", "3", "--files", "2"]
            .into_iter()
            .chain(["--no-light", "--out", p(&daq)])
            .collect::<Vec<_>>(),
    ));
    for entry in std::fs::read_dir(&daq).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with("truth.json") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let rucio = Rucio::login(&url);
    let (drop_rse, target_rse) = rucio_rses(&rucio, &dir, "D");
    let (db, nersc) = (dir.join("dm.sqlite"), dir.join("nersc"));
    // The run's DQ is done, so its pack is shipped and registered too.
    let (dqm, packs) = (dir.join("dqm"), dir.join("packs"));
    let files: Vec<PathBuf> = std::fs::read_dir(&daq).unwrap().map(|e| e.unwrap().path()).collect();
    run_packet_rate_only(&dir, &files.iter().map(PathBuf::as_path).collect::<Vec<_>>(), &dqm, &[]);
    let chain = || {
        Command::new(env!("CARGO_BIN_EXE_larmon"))
            .args(["daq", p(&daq), "--db", p(&db), "--site", "NERSC", "--to", p(&nersc)])
            .args(["--stable-s", "0", "--once", "--clean-buffer-after-s", "0"])
            .args(["--dq-out", p(&dqm), "--pack-dq-into", p(&packs), "--pack-dq-after-s", "0"])
            .args(["--rucio-url", &url, "--rucio-username", "ddmlab"])
            .args(["--rse", &drop_rse, "--rule-rse", &target_rse])
            .env("RUCIO_PASSWORD", "secret")
            .output()
            .unwrap()
    };
    let first = ok(chain());
    assert_eq!(first.matches("registered ").count(), 3, "2 files and the DQ pack: {first}");
    assert_eq!(first.matches("cleaned ").count(), 2, "{first}");
    let dataset = format!("neardet-2x2-lar-charge_run{run:07}");
    let replicas = rucio.get(&format!("/replicas/neardet-2x2-lar-charge/{dataset}"));
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    assert!(replicas.iter().all(|r| r["states"][&drop_rse] == "AVAILABLE"), "{replicas:?}");
    let packs_dataset = format!("neardet-2x2-lar_run{run:07}");
    let replicas = rucio.get(&format!("/replicas/neardet-2x2-lar/{packs_dataset}"));
    assert_eq!(replicas.len(), 1, "{replicas:?}");
    assert!(replicas[0]["name"].as_str().unwrap().starts_with("dqm-"), "{replicas:?}");
    assert_eq!(replicas[0]["states"][&drop_rse], "AVAILABLE", "{replicas:?}");
    let again = ok(chain());
    assert!(!again.contains("registered ") && !again.contains("cleaned "), "{again}");
    assert!(again.contains("past: declare 3, replicate 3, register 3"), "{again}");
    assert!(again.contains("clean 2, pack 1"), "{again}");
}

/// `larmon daq --pack-dq-into`: once the folder has settled and a run's report has been quiet
/// long enough, the run's DQ outputs are packed, catalogued with the data files as parents and
/// replicated like data; a later pass changes nothing; a report that changes after its pack
/// gets a second revision, and the first stays as it was.
#[test]
fn the_daq_chain_packs_a_settled_runs_dq_outputs_and_ships_them() {
    let dir = scratch("dm-daq-pack");
    let daq = dir.join("daq");
    ok(larmon(
        &["simulate", "--run", "62", "--duration-s", "3", "--files", "2", "--no-light"]
            .into_iter()
            .chain(["--out", p(&daq)])
            .collect::<Vec<_>>(),
    ));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&daq).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with("truth.json") {
            std::fs::remove_file(path).unwrap(); // not data
        } else if path.extension().is_some_and(|e| e == "h5") {
            files.push(path);
        }
    }
    assert_eq!(files.len(), 2);
    let (db, nersc) = (dir.join("dm.sqlite"), dir.join("nersc"));
    let (dqm, packs) = (dir.join("dqm"), dir.join("packs"));
    let chain = |quiet_s: &str| {
        let mut args = vec!["daq", p(&daq), "--db", p(&db), "--site", "NERSC", "--to", p(&nersc)];
        args.extend(["--dq-out", p(&dqm), "--pack-dq-into", p(&packs)]);
        args.extend(["--pack-dq-after-s", quiet_s, "--stable-s", "0", "--once"]);
        let out = larmon(&args);
        let status = read_json(&dqm.join("daq-status.json"));
        (ok(out), status)
    };
    let packed = |text: &str| text.matches("packed the DQ outputs into").count();

    // No report yet: nothing to pack.
    let (first, status) = chain("0");
    assert_eq!(packed(&first), 0, "{first}");
    assert_eq!(status["backlog"]["pack"], 0, "{status}");
    assert_eq!(status["backlog"]["process"], 2, "{status}");
    // Processed, but the report has not been quiet for an hour: waiting.
    run_packet_rate_only(&dir, &files.iter().map(PathBuf::as_path).collect::<Vec<_>>(), &dqm, &[]);
    let run_dirs: Vec<String> = std::fs::read_dir(&dqm)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("report.json").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(run_dirs.len(), 1, "one run: {run_dirs:?}");
    let run = &run_dirs[0];
    let (waiting, status) = chain("3600");
    assert_eq!(packed(&waiting), 0, "{waiting}");
    assert_eq!(status["backlog"]["pack"], 1, "{status}");

    // Quiet long enough: packed, catalogued and replicated in the same pass.
    let (shipped, status) = chain("0");
    assert_eq!(packed(&shipped), 1, "{shipped}");
    let name = format!("dqm-{run}.tar.gz");
    assert!(shipped.contains(&format!("replicated neardet-2x2-lar:{name} (Copied)")), "{shipped}");
    assert_eq!((&status["done"]["pack"], &status["backlog"]["pack"]), (&json!(1), &json!(0)));
    let pack = packs.join(&name);
    let replica = nersc.join("neardet-2x2-lar").join(&name);
    assert_eq!(std::fs::read(&replica).unwrap(), std::fs::read(&pack).unwrap());
    let show: Value =
        serde_json::from_str(&ok(larmon(&["catalog", "--db", p(&db), "show", &name]))).unwrap();
    let parents: Vec<&str> = show["file"]["declaration"]["parents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["did"].as_str().unwrap())
        .collect();
    assert_eq!(parents.len(), 2, "{show}");
    for file in &files {
        let did = format!("neardet-2x2-lar-charge:{}", file.file_name().unwrap().to_string_lossy());
        assert!(parents.contains(&did.as_str()), "{did} in {parents:?}");
    }
    assert_eq!(read_json(&packs.join(format!("{name}.json")))["name"], json!(name), "sidecar");

    // Nothing changed: nothing is packed again.
    let (again, status) = chain("0");
    assert_eq!(packed(&again), 0, "{again}");
    assert_eq!(status["done"]["pack"], 1, "{status}");

    // The report written again with the same content: the same pack, no new revision.
    let first_bytes = std::fs::read(&pack).unwrap();
    let report = dqm.join(run).join("report.json");
    let report_text = std::fs::read(&report).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&report, &report_text).unwrap();
    let (same, status) = chain("0");
    assert_eq!(packed(&same), 0, "{same}");
    assert_eq!(status["done"]["pack"], 1, "{status}");
    assert!(!packs.join(format!("dqm-{run}.r2.tar.gz")).exists());

    // The run processed again (a later report): a second revision, the first untouched.
    std::thread::sleep(Duration::from_millis(20));
    run_packet_rate_only(&dir, &files.iter().map(PathBuf::as_path).collect::<Vec<_>>(), &dqm, &[]);
    assert_ne!(std::fs::read(&report).unwrap(), report_text, "the report says when it was made");
    let (revised, _) = chain("0");
    let second = format!("dqm-{run}.r2.tar.gz");
    assert!(revised.contains(&format!("neardet-2x2-lar:{second}")), "{revised}");
    assert_eq!(std::fs::read(&pack).unwrap(), first_bytes, "revision 1 unchanged");
    assert_eq!(std::fs::read(&replica).unwrap(), first_bytes);
    assert!(nersc.join("neardet-2x2-lar").join(&second).is_file());
    let show: Value =
        serde_json::from_str(&ok(larmon(&["catalog", "--db", p(&db), "show", &second]))).unwrap();
    assert_eq!(show["file"]["declaration"]["metadata"]["dune.dq_revision"], json!(2), "{show}");
    let (last, _) = chain("0");
    assert_eq!(packed(&last), 0, "{last}");
}

//! Notification when a run's quality flag turns bad: a JSON POST to a webhook (Mattermost,
//! Slack, Rocket.Chat and most chat tools take its `text`; other receivers read the fields).
//! Sent from a thread of its own, so a slow or dead receiver never holds up the watcher; a
//! failed delivery is retried a few times and then reported, never fatal.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use std::path::Path;

use larmon_report::{RunReport, RunStore, Status};

/// One notification.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FlagNotification {
    /// What a chat tool shows.
    pub text: String,
    /// The run.
    pub run: String,
    /// Its flag now.
    pub flag: Status,
    /// Its flag before (none: first report).
    pub previous_flag: Option<Status>,
    /// The checks and plugins that are not ok, as `name: status: message`.
    pub problems: Vec<String>,
    /// The run's page, if a dashboard address was given.
    pub url: Option<String>,
}

/// Watches the flags of written reports and notifies when one turns `error` (from nothing, `ok`
/// or `warning`); a run that stays `error` is told once.
pub struct FlagNotifier {
    url: String,
    dashboard: Option<String>,
    flags: HashMap<String, Status>,
    outbox: Sender<FlagNotification>,
    /// Deliveries that failed for good, as messages for the operator.
    pub failures: Receiver<String>,
}

impl FlagNotifier {
    /// Notifies `url`; `dashboard` (e.g. `http://dqm:8080`) makes run links. The flags of the
    /// reports already in `out` are known from the start, so a restarted watcher does not tell
    /// again of runs that were `error` before it stopped.
    pub fn new(url: &str, dashboard: Option<&str>, out: &Path) -> Self {
        let (outbox, inbox) = channel::<FlagNotification>();
        let (failed, failures) = channel();
        let target = url.to_string();
        std::thread::spawn(move || deliver(&target, &inbox, &failed));
        Self {
            url: url.into(),
            dashboard: dashboard.map(|d| d.trim_end_matches('/').to_string()),
            flags: RunStore::new(out)
                .runs()
                .0
                .iter()
                .filter_map(|r| Some((r.run.clone(), r.quality.flag?)))
                .collect(),
            outbox,
            failures,
        }
    }

    /// The webhook's address.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Looks at a report just written; returns the notification it queued, if any.
    pub fn report_written(&mut self, report: &RunReport) -> Option<FlagNotification> {
        let flag = report.quality.flag.unwrap_or(Status::Error);
        let previous = self.flags.insert(report.run.clone(), flag);
        if flag != Status::Error || previous == Some(Status::Error) {
            return None;
        }
        let mut problems: Vec<String> = report
            .quality
            .host_checks
            .iter()
            .filter(|c| c.status != Status::Ok)
            .map(|c| format!("{}: {}: {}", c.name, c.status.as_str(), c.message))
            .collect();
        for p in &report.plugins {
            if let Some(error) = &p.error {
                problems.push(format!("{}: plugin failed: {error}", p.name));
            }
            problems.extend(
                p.checks.iter().filter(|c| c.status != Status::Ok).map(|c| {
                    format!("{}/{}: {}: {}", p.name, c.name, c.status.as_str(), c.message)
                }),
            );
        }
        let url = self.dashboard.as_ref().map(|d| format!("{d}/runs/{}", report.run));
        let mut text = format!(
            "larmon: run {} is flagged ERROR (was {})",
            report.run,
            previous.map_or("new", Status::as_str)
        );
        for problem in problems.iter().take(5) {
            text += &format!("\n- {problem}");
        }
        if problems.len() > 5 {
            text += &format!("\n- … {} more", problems.len() - 5);
        }
        if let Some(url) = &url {
            text += &format!("\n{url}");
        }
        let notification = FlagNotification {
            text,
            run: report.run.clone(),
            flag,
            previous_flag: previous,
            problems,
            url,
        };
        let _ = self.outbox.send(notification.clone());
        Some(notification)
    }
}

/// The delivery thread: each notification POSTed as JSON, tried three times.
fn deliver(url: &str, inbox: &Receiver<FlagNotification>, failed: &Sender<String>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(true)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    for notification in inbox {
        let body = serde_json::to_string(&notification).expect("a notification serialises");
        let mut last_error = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(2 * attempt));
            }
            match agent.post(url).header("Content-Type", "application/json").send(body.as_str()) {
                Ok(_) => {
                    last_error.clear();
                    break;
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        if !last_error.is_empty() {
            let _ = failed.send(format!(
                "notifying {url} of run {} ({}): {last_error}",
                notification.run,
                notification.flag.as_str()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use larmon_report::Check;
    use larmon_report::model::Quality;

    use super::*;

    fn report(run: &str, flag: Status) -> RunReport {
        RunReport {
            run: run.into(),
            version: None,
            files: Vec::new(),
            run_kind: None,
            larmon_version: "0".into(),
            provenance: Default::default(),
            created_unix_s: 0.0,
            start_unix_s: None,
            end_unix_s: None,
            host: serde_json::json!({}),
            detector: serde_json::Value::Null,
            quality: Quality {
                flag: Some(flag),
                host_checks: vec![Check {
                    name: "tile-rate/dead_tiles".into(),
                    status: flag,
                    message: "3 tiles silent".into(),
                }],
            },
            plugins: Vec::new(),
        }
    }

    /// A one-request HTTP server: the body of the POST it got.
    fn receiver() -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
            String::from_utf8(body).unwrap()
        });
        (url, handle)
    }

    #[test]
    fn a_run_turning_error_is_posted_once_and_a_restart_remembers_it() {
        let out = std::env::temp_dir().join(format!("larmon-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let (url, received) = receiver();
        let mut notifier = FlagNotifier::new(&url, Some("https://dqm.example.org/"), &out);
        assert_eq!(notifier.report_written(&report("run-0000001", Status::Ok)), None);
        assert_eq!(notifier.report_written(&report("run-0000001", Status::Warning)), None);
        let sent = notifier.report_written(&report("run-0000001", Status::Error)).unwrap();
        assert_eq!(sent.previous_flag, Some(Status::Warning));
        assert_eq!(sent.url.as_deref(), Some("https://dqm.example.org/runs/run-0000001"));
        let body: serde_json::Value = serde_json::from_str(&received.join().unwrap()).unwrap();
        assert_eq!(body["run"], "run-0000001");
        assert_eq!(body["flag"], "error");
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("run-0000001 is flagged ERROR (was warning)"), "{text}");
        assert!(text.contains("tile-rate/dead_tiles: error: 3 tiles silent"), "{text}");
        assert_eq!(notifier.report_written(&report("run-0000001", Status::Error)), None, "once");
        assert!(notifier.report_written(&report("run-0000001", Status::Ok)).is_none());
        assert!(notifier.report_written(&report("run-0000001", Status::Error)).is_some(), "again");

        // A restarted watcher knows the flags of the reports on disk.
        let dir = out.join("run-0000002");
        std::fs::create_dir_all(&dir).unwrap();
        let error = report("run-0000002", Status::Error);
        std::fs::write(dir.join("report.json"), serde_json::to_vec(&error).unwrap()).unwrap();
        let mut restarted = FlagNotifier::new("http://127.0.0.1:9/none", None, &out);
        assert_eq!(restarted.report_written(&error), None);
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn a_dead_receiver_is_reported_not_fatal() {
        let out = std::env::temp_dir().join(format!("larmon-notify-dead-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        // Port 9 (discard) on localhost: nothing listens, the connection is refused.
        let mut notifier = FlagNotifier::new("http://127.0.0.1:9/hook", None, &out);
        assert!(notifier.report_written(&report("run-0000003", Status::Error)).is_some());
        let failure = notifier.failures.recv_timeout(Duration::from_secs(60)).unwrap();
        assert!(
            failure.contains("notifying http://127.0.0.1:9/hook of run run-0000003"),
            "{failure}"
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}

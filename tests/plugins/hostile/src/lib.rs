//! A plugin that misbehaves on purpose, in the way its configuration's "mode" says, when it
//! receives its first batch (or when asked for its report, for "huge-svg"):
//! spin (infinite loop), memory (allocates without bound), panic, huge-svg (a 1 GiB figure),
//! big-svg (40 MiB, above the report cap but within memory), read-file (opens /etc/passwd),
//! socket (connects to 127.0.0.1:22), env (reads the environment), sleep (sleeps an hour inside
//! a WASI call), slow (0.4 s of work per batch, each call under the limit), chatty (prints
//! 1 MiB to stdout and stderr), recurse (runaway recursion), nan (NaN and ±Inf metrics),
//! long-names (a 40 MiB metric name and unit), figures (100 000 figures), clash (figure names
//! that map to one file), navigate (an SVG that tries to send the browser elsewhere),
//! well (behaves).
//! The sandbox tests in host/runtime/tests/ check that each is stopped or refused with a reason.

use larmon_plugin_sdk::prelude::*;

settings! {
    /// How it misbehaves.
    struct Settings {
        mode: String = "well".into(),
    }
}

#[derive(Serialize, Deserialize, Merge)]
struct Hostile {
    #[serde(skip)]
    settings: Settings,
    rows: u64,
}

impl Plugin for Hostile {
    type Settings = Settings;

    fn info() -> Info {
        Info::new("hostile", "Misbehaves on purpose (sandbox tests)")
            .consumes("packets", &["packet_type"])
    }

    fn new(settings: Settings, _pixels: Pixels) -> Result<Self, String> {
        Ok(Self { settings, rows: 0 })
    }

    fn packets(&mut self, batch: &Batch) -> Result<(), String> {
        self.rows += batch.len() as u64;
        match self.settings.mode.as_str() {
            "spin" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("hostile plugin panics on purpose"),
            "read-file" => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => {
                    Err(format!("SANDBOX BREACH: read {} bytes of /etc/passwd", text.len()))
                }
                Err(e) => Err(format!("cannot open /etc/passwd: {e}")),
            },
            "socket" => match std::net::TcpStream::connect("127.0.0.1:22") {
                Ok(_) => Err("SANDBOX BREACH: connected to 127.0.0.1:22".into()),
                Err(e) => Err(format!("cannot connect: {e}")),
            },
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(())
            }
            "slow" => {
                let start = std::time::Instant::now();
                let mut x: u64 = 1;
                while start.elapsed() < std::time::Duration::from_millis(400) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                Ok(())
            }
            "chatty" => {
                let line = "x".repeat(1023);
                for _ in 0..1024 {
                    println!("{line}");
                    eprintln!("{line}");
                }
                Ok(())
            }
            "recurse" => {
                fn deeper(n: u64, pad: [u64; 64]) -> u64 {
                    if std::hint::black_box(n) == u64::MAX {
                        return 0;
                    }
                    std::hint::black_box(pad)[0] + deeper(n + 1, std::hint::black_box(pad))
                }
                Err(format!("recursion returned {}", deeper(0, [1; 64])))
            }
            "env" => {
                let vars = std::env::vars().count();
                let args = std::env::args().count();
                Err(format!("environment: {vars} variables, {args} arguments"))
            }
            _ => Ok(()),
        }
    }

    fn report(&self) -> Result<Report, String> {
        let svg = match self.settings.mode.as_str() {
            "huge-svg" => "x".repeat(1 << 30),
            "big-svg" => "x".repeat(40 << 20),
            "navigate" => String::from(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100\" height=\"100\">\
                 <foreignObject width=\"100\" height=\"100\"><meta \
                 xmlns=\"http://www.w3.org/1999/xhtml\" http-equiv=\"refresh\" \
                 content=\"0;url=https://example.org/\"/></foreignObject>\
                 <script>window.top.location='https://example.org/'</script></svg>",
            ),
            _ => String::from("<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
        };
        let mut report = Report::new().figure("figure", "hostile", svg, &self.rows).metric(
            "rows",
            self.rows as f64,
            None,
            "rows",
        );
        match self.settings.mode.as_str() {
            "nan" => {
                report = report
                    .metric("not_a_number", f64::NAN, Some(f64::NAN), "")
                    .metric("plus_infinity", f64::INFINITY, None, "")
                    .metric("minus_infinity", f64::NEG_INFINITY, Some(1.0), "");
            }
            "long-names" => {
                report = report.metric(&"n".repeat(40 << 20), 1.0, None, &"u".repeat(1 << 20));
            }
            "figures" => {
                for i in 0..100_000 {
                    report = report.figure(&format!("f{i}"), "", String::from("<svg/>"), &i);
                }
            }
            "clash" => {
                for name in ["a/b", "a_b", "A_B", "../../escape"] {
                    report = report.figure(name, name, String::from("<svg/>"), &name);
                }
            }
            _ => {}
        }
        Ok(report)
    }
}

export_plugin!(Hostile);

//! A plugin that misbehaves on purpose, in the way its configuration's "mode" says, when it
//! receives its first batch (or when asked for its report, for "huge-svg"):
//! spin (infinite loop), memory (allocates without bound), panic, huge-svg (a 1 GiB figure),
//! big-svg (40 MiB, above the report cap but within memory), read-file (opens /etc/passwd),
//! socket (connects to 127.0.0.1:22), env (reads the environment), well (behaves).
//! The sandbox tests in host/runtime/tests/ check that each is stopped or refused with a reason.

use larmon_plugin_sdk::prelude::*;

#[derive(Serialize, Deserialize)]
struct Hostile {
    mode: String,
    rows: u64,
}

impl Plugin for Hostile {
    fn info() -> Info {
        Info::new("hostile", "Misbehaves on purpose (sandbox tests)")
            .consumes("packets", &["packet_type"])
            .config_key("mode")
    }

    fn new(config: &Config) -> Result<Self, String> {
        let mode = config.get("mode").and_then(|m| m.as_str()).unwrap_or("well").to_owned();
        Ok(Self { mode, rows: 0 })
    }

    fn packets(&mut self, batch: &Batch) -> Result<(), String> {
        self.rows += batch.len() as u64;
        match self.mode.as_str() {
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
            "env" => {
                let vars = std::env::vars().count();
                let args = std::env::args().count();
                Err(format!("environment: {vars} variables, {args} arguments"))
            }
            _ => Ok(()),
        }
    }

    fn merge(&mut self, other: Self) -> Result<(), String> {
        self.rows += other.rows;
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let svg = match self.mode.as_str() {
            "huge-svg" => "x".repeat(1 << 30),
            "big-svg" => "x".repeat(40 << 20),
            _ => String::from("<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
        };
        Ok(Report::new().figure("figure", "hostile", svg, &self.rows).metric(
            "rows",
            self.rows as f64,
            None,
            "rows",
        ))
    }
}

export_plugin!(Hostile);

//! `larmon streams`: the stream vocabulary (names, producing stage, columns and types), printed
//! from the schemas the pipeline uses, so it cannot differ from what plugins receive.

use anyhow::Result;
use larmon_pipeline::Stream;
use larmon_pipeline::streams::Producer;

/// List larmon's streams: what a plugin can consume and `calibrate --export` can write.
///
/// For each stream: its name (what a plugin names in `consumes`), the stage that produces it,
/// and its columns with their Arrow types (`?` marks a column that can be null).
///
/// Examples:
///   larmon streams
///   larmon streams --json | jq '.[] | select(.name == "hits")'
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Print as JSON: [{name, producer, columns: [{name, type, nullable}]}].
    #[arg(long)]
    json: bool,
}

fn producer(stream: Stream) -> &'static str {
    match stream.producer() {
        Producer::ChargeIngest => "charge files",
        Producer::Calibration => "calibration",
        Producer::Geometry => "detector description (once, before the data)",
        Producer::LightIngest => "light files",
    }
}

pub fn run(args: Args) -> Result<()> {
    if args.json {
        let streams: Vec<serde_json::Value> = Stream::ALL
            .iter()
            .map(|&s| {
                let columns: Vec<serde_json::Value> = s
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| {
                        serde_json::json!({
                            "name": f.name(),
                            "type": f.data_type().to_string(),
                            "nullable": f.is_nullable(),
                        })
                    })
                    .collect();
                serde_json::json!({"name": s.name(), "producer": producer(s), "columns": columns})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&streams)?);
        return Ok(());
    }
    for stream in Stream::ALL {
        println!("{} ({})", stream.name(), producer(stream));
        for field in stream.schema().fields() {
            let null = if field.is_nullable() { "?" } else { "" };
            println!("  {:<24} {}{null}", field.name(), field.data_type());
        }
    }
    Ok(())
}

//! `larmon streams`: the stream vocabulary (names, producing stage, columns and types), printed
//! from the schemas the pipeline uses, so it cannot differ from what plugins receive.

use anyhow::Result;
use arrow::datatypes::DataType;
use larmon_pipeline::Stream;
use larmon_pipeline::plugins::PIXEL_BATCH_ROWS;
use larmon_pipeline::streams::Producer;

/// List larmon's streams: what a plugin can consume and `calibrate --export` can write.
///
/// For each stream: its name (what a plugin names in `consumes`), the stage that produces it,
/// and its columns with their Arrow types (`?` marks a column that can be null).
///
/// Examples:
///   larmon streams
///   larmon streams --json | jq '.[] | select(.name == "hits")'
///   larmon streams --markdown      # the tables of docs/writing-a-plugin.md
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Print as JSON: [{name, producer, columns: [{name, type, nullable}]}].
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print Markdown tables with each column's type in the SDK's `columns!` declaration
    /// (docs/writing-a-plugin.md holds this output; a test keeps it current).
    #[arg(long)]
    markdown: bool,
}

/// A column's type in the plugin SDK's `columns!` declaration (the `Batch` call of that name
/// reads it alone: `u8` → `batch.u8`, `Option<u8>` → `batch.opt_u8`).
fn sdk_type(data_type: &DataType, nullable: bool) -> String {
    let name = match data_type {
        DataType::UInt8 => "u8",
        DataType::UInt16 => "u16",
        DataType::UInt32 => "u32",
        DataType::UInt64 => "u64",
        DataType::Int64 => "i64",
        DataType::Float32 => "f32",
        DataType::Float64 => "f64",
        DataType::List(item) if item.data_type() == &DataType::Int16 => return "`[i16]`".into(),
        _ => return "(Arrow: `batch.record_batch()`)".into(),
    };
    if nullable { format!("`Option<{name}>`") } else { format!("`{name}`") }
}

/// One Markdown table per stream.
fn markdown() -> String {
    let mut out = String::new();
    for stream in Stream::ALL {
        out.push_str(&format!("### `{}` — from {}\n\n", stream.name(), producer(stream)));
        out.push_str("| column | Arrow type | in `columns!` |\n|---|---|---|\n");
        for field in stream.schema().fields() {
            let null = if field.is_nullable() { " (nullable)" } else { "" };
            out.push_str(&format!(
                "| `{}` | {}{null} | {} |\n",
                field.name(),
                field.data_type(),
                sdk_type(field.data_type(), field.is_nullable())
            ));
        }
        out.push('\n');
    }
    out
}

fn producer(stream: Stream) -> String {
    match stream.producer() {
        Producer::ChargeIngest => "charge files".into(),
        Producer::Calibration => "calibration".into(),
        Producer::Geometry => format!(
            "detector description (once, before the data, in batches of up to {} rows)",
            thousands(PIXEL_BATCH_ROWS)
        ),
        Producer::LightIngest => "light files".into(),
    }
}

/// `32768` as `32 768`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

pub fn run(args: Args) -> Result<()> {
    if args.markdown {
        print!("{}", markdown());
        return Ok(());
    }
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

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_grouped_by_spaces() {
        assert_eq!(thousands(32_768), "32 768");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1 000 000");
        assert_eq!(thousands(0), "0");
    }
}

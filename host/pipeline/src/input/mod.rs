//! The input stage: a run's charge files calibrated file by file ([`charge`]; ndlar_flow files
//! mapped onto the same streams by [`flow`]) and its light files read and matched to the charge
//! triggers ([`light`]).

pub mod charge;
pub mod flow;
pub mod light;

/// Widens a time span (Unix seconds, first and last) by another.
pub fn join_span(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<(u64, u64)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
        (a, b) => a.or(b),
    }
}

/// Widens `span` by the Unix seconds of the timestamp rows (packet type 4) of a batch: the
/// data's time span.
pub fn widen_by_timestamps(span: &mut Option<(u64, u64)>, batch: &larmon_ingest::PacketColumns) {
    for (kind, seconds) in batch.packet_type.iter().zip(&batch.timestamp) {
        if *kind == larmon_decode::pacman::TIMESTAMP_ROW {
            *span = join_span(*span, Some((*seconds, *seconds)));
        }
    }
}

/// Sums the numeric fields of per-file host statistics into a run's.
pub fn add_host_stats(total: &mut serde_json::Value, file: &serde_json::Value) {
    let (Some(total), Some(file)) = (total.as_object_mut(), file.as_object()) else { return };
    for (key, value) in file {
        let sum = total.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0)
            + value.as_u64().unwrap_or(0);
        total.insert(key.clone(), sum.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_widen_and_stats_add() {
        assert_eq!(join_span(Some((5, 9)), Some((3, 7))), Some((3, 9)));
        assert_eq!(join_span(None, Some((3, 7))), Some((3, 7)));
        assert_eq!(join_span(None, None), None);
        let mut total = serde_json::json!({"rows": 2});
        add_host_stats(&mut total, &serde_json::json!({"rows": 3, "tracks": 1}));
        assert_eq!(total, serde_json::json!({"rows": 5, "tracks": 1}));
    }
}

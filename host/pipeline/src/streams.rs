//! The stream vocabulary: every Arrow stream larmon hands to plugins and exports, with its name
//! (what a plugin asks for in its info), its schema, and the stage that produces it. The host,
//! the CLI (`calibrate --stream`, `--export`) and the docs take the names from here, nowhere
//! else; the schemas live beside the code that builds the rows (`larmon-ingest`,
//! `larmon-calibrate`) and are looked up through [`Stream::schema`].

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use larmon_calibrate::output::{
    CalibratedBatch, events_record_batch, events_schema, hits_schema, pixels_schema,
    segments_record_batch, segments_schema, track_pixels_record_batch, track_pixels_schema,
    tracks_record_batch, tracks_schema,
};
use larmon_ingest::arrow::packets_schema;
use larmon_ingest::channel_activity::channels_schema;
use larmon_ingest::light::streams::{
    light_events_schema, light_matches_schema, light_waveforms_schema,
};

/// One of larmon's streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Decoded packet rows, one per LArPix or PACMAN word (ingest).
    Packets,
    /// Per channel, the valid data packets' count, Σ ADC, Σ ADC² and first/last Unix time,
    /// summed natively from `packets` (ingest): for plugins that keep per-channel totals only.
    Channels,
    /// Calibrated hits: charge in ke⁻, pixel x/y, drift z (calibration).
    Hits,
    /// Events built from external triggers or self-triggered clusters, with t0 (calibration).
    Events,
    /// Straight tracks fitted to an event's hits (calibration).
    Tracks,
    /// dQ/dx segments along the tracks (calibration).
    TrackSegments,
    /// The hits of each track with their position along it (calibration).
    TrackPixels,
    /// The detector's pixels with their positions: sent once, before any data (geometry).
    Pixels,
    /// Light events: time stamps and boards of each light trigger (light ingest).
    LightEvents,
    /// Light waveforms, reduced (baseline, noise, peak, integral) with the 14-bit samples on
    /// request (light ingest).
    LightWaveforms,
    /// Light events paired with charge triggers by time, both ways (light ingest + calibration).
    LightMatches,
}

/// Which stage of the pipeline produces a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Producer {
    /// Read from the charge files (`larmon-ingest`).
    ChargeIngest,
    /// Calibration of the charge data (`larmon-calibrate`).
    Calibration,
    /// The detector description, once per run.
    Geometry,
    /// Read from the light files (`larmon-ingest::light`).
    LightIngest,
}

impl Stream {
    /// Every stream, in the order the docs list them.
    pub const ALL: [Stream; 11] = [
        Stream::Packets,
        Stream::Channels,
        Stream::Hits,
        Stream::Events,
        Stream::Tracks,
        Stream::TrackSegments,
        Stream::TrackPixels,
        Stream::Pixels,
        Stream::LightEvents,
        Stream::LightWaveforms,
        Stream::LightMatches,
    ];

    /// The name plugins ask for and report files use.
    pub const fn name(self) -> &'static str {
        match self {
            Stream::Packets => "packets",
            Stream::Channels => "channels",
            Stream::Hits => "hits",
            Stream::Events => "events",
            Stream::Tracks => "tracks",
            Stream::TrackSegments => "track_segments",
            Stream::TrackPixels => "track_pixels",
            Stream::Pixels => "pixels",
            Stream::LightEvents => "light_events",
            Stream::LightWaveforms => "light_waveforms",
            Stream::LightMatches => "light_matches",
        }
    }

    /// The stream of a name, if it is one.
    pub fn from_name(name: &str) -> Option<Stream> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Its Arrow schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            Stream::Packets => packets_schema(),
            Stream::Channels => channels_schema(),
            Stream::Hits => hits_schema(),
            Stream::Events => events_schema(),
            Stream::Tracks => tracks_schema(),
            Stream::TrackSegments => segments_schema(),
            Stream::TrackPixels => track_pixels_schema(),
            Stream::Pixels => pixels_schema(),
            Stream::LightEvents => light_events_schema(),
            Stream::LightWaveforms => light_waveforms_schema(),
            Stream::LightMatches => light_matches_schema(),
        }
    }

    /// The stage that produces it.
    pub const fn producer(self) -> Producer {
        match self {
            Stream::Packets | Stream::Channels => Producer::ChargeIngest,
            Stream::Hits
            | Stream::Events
            | Stream::Tracks
            | Stream::TrackSegments
            | Stream::TrackPixels => Producer::Calibration,
            Stream::Pixels => Producer::Geometry,
            Stream::LightEvents | Stream::LightWaveforms | Stream::LightMatches => {
                Producer::LightIngest
            }
        }
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The calibrated streams of one calibration step, in the order plugins receive them.
pub const CALIBRATED: [Stream; 5] =
    [Stream::Hits, Stream::Events, Stream::Tracks, Stream::TrackSegments, Stream::TrackPixels];

/// One calibrated stream of a calibration step as an Arrow batch (possibly empty); the hits'
/// columns are taken as they are.
pub fn calibrated_batch(mut done: CalibratedBatch, stream: Stream) -> Option<RecordBatch> {
    take_batch(&mut done, stream)
}

/// Every calibrated stream of a calibration step, empty ones dropped; the hits' columns are
/// taken as they are.
pub fn calibrated_batches(mut done: CalibratedBatch) -> Vec<(Stream, Arc<RecordBatch>)> {
    CALIBRATED
        .into_iter()
        .filter_map(|s| take_batch(&mut done, s).map(|b| (s, b)))
        .filter(|(_, b)| b.num_rows() > 0)
        .map(|(s, b)| (s, Arc::new(b)))
        .collect()
}

/// The batch of one calibrated stream, the hits' columns taken out of `done`.
fn take_batch(done: &mut CalibratedBatch, stream: Stream) -> Option<RecordBatch> {
    Some(match stream {
        Stream::Hits => std::mem::take(&mut done.hits).into_record_batch(),
        Stream::Events => events_record_batch(&done.events),
        Stream::Tracks => tracks_record_batch(&done.tracks),
        Stream::TrackSegments => segments_record_batch(&done.segments),
        Stream::TrackPixels => track_pixels_record_batch(&done.track_pixels),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for stream in Stream::ALL {
            assert_eq!(Stream::from_name(stream.name()), Some(stream));
            assert_eq!(Stream::ALL.iter().filter(|s| s.name() == stream.name()).count(), 1);
        }
        assert_eq!(Stream::from_name("nope"), None);
    }

    #[test]
    fn each_calibrated_stream_builds_a_batch_of_its_schema() {
        let done = CalibratedBatch::default();
        for stream in CALIBRATED {
            let batch = calibrated_batch(done.clone(), stream).unwrap();
            assert_eq!(batch.schema(), stream.schema(), "{stream}");
            assert_eq!(stream.producer(), Producer::Calibration);
        }
        assert!(calibrated_batch(done, Stream::Packets).is_none());
    }
}

//! event-display: the quick look: the events a shifter chose by id, then the latest (or the
//! first) few events with tracks, each as its hits in the x–y (pixel plane) and z–y (drift vs
//! height) projections, coloured by charge, with the fitted tracks drawn over them.
//!
//! Settings (`[plugins.event-display]`): `events` (how many with tracks, 1–20, default 4),
//! `pick` (`"latest"`, the default, so that a live run shows what just happened, or `"first"`),
//! `event_ids` (events always shown, by the id in their figure titles and the `events` stream).

use std::collections::{BTreeMap, BTreeSet};

use larmon_plugin_sdk::plotters::prelude::*;
use larmon_plugin_sdk::plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
use larmon_plugin_sdk::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Event {
    /// (x, y, z, q) of hits with a position.
    hits: Vec<[f32; 4]>,
    /// (start, end) of its tracks.
    tracks: Vec<[f64; 6]>,
}

/// Which events with tracks are kept besides the chosen ones.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Pick {
    /// The first of the run.
    First,
    /// The latest of the run (highest ids: files in order, events in order within a file).
    Latest,
}

settings! {
    /// Its `[plugins.event-display]` settings.
    struct Settings {
        /// Events with tracks shown (1–20).
        events: usize = 4,
        /// Which: "latest" or "first".
        pick: Pick = Pick::Latest,
        /// Events shown whatever `pick` says (at most 20).
        event_ids: BTreeSet<u64> = BTreeSet::new(),
    }
}

#[derive(Serialize, Deserialize)]
struct EventDisplay {
    events: BTreeMap<u64, Event>,
    /// From the configuration, not from snapshots.
    #[serde(skip)]
    settings: Settings,
}

impl EventDisplay {
    /// Picked (not chosen) events with tracks.
    fn picked(&self) -> impl Iterator<Item = u64> + '_ {
        self.events
            .iter()
            .filter(|(id, e)| !e.tracks.is_empty() && !self.settings.event_ids.contains(id))
            .map(|(id, _)| *id)
    }

    /// Keeps `wanted` picked events with tracks: the lowest ids for `first`, the highest for
    /// `latest`; events without tracks that are complete (id ≤ `complete`) go, unless chosen.
    fn trim(&mut self, complete: Option<u64>) {
        if let Some(last) = complete {
            let chosen = &self.settings.event_ids;
            self.events.retain(|id, e| *id > last || !e.tracks.is_empty() || chosen.contains(id));
        }
        let picked: Vec<u64> = self.picked().collect();
        let surplus = picked.len().saturating_sub(self.settings.events);
        let dropped = match self.settings.pick {
            Pick::First => &picked[picked.len() - surplus..],
            Pick::Latest => &picked[..surplus],
        };
        for id in dropped {
            self.events.remove(id);
        }
    }
}

/// What a shifter reads beside these figures on the dashboard (docs/plots.md says the same;
/// a test keeps the two alike).
const HELP: &str = "\
    The latest four triggered events with tracks of the run — in a live run, what the detector \
    just saw — then any events chosen by id: hits in the x–y (pixel plane) and z–y (drift vs \
    height) projections coloured by charge, fitted tracks in red. `[plugins.event-display]`: \
    `events = N` (1–20), `pick = \"first\"` for the run's first events, `event_ids = [ID, …]` \
    for events to show whatever else is picked (ids as in the figure titles and the events \
    stream; one not in the data gives a warning). **Bad:** hits scattered off the tracks in z \
    (wrong t0 or drift velocity), straight tracks broken at tile edges (geometry).";

/// Merged by hand: the events of both parts joined (an event split over two parts made whole),
/// then trimmed to the displayed number.
impl Merge for EventDisplay {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        for (id, event) in other.events {
            let mine = self.events.entry(id).or_default();
            mine.hits.extend(event.hits);
            mine.tracks.extend(event.tracks);
        }
        // Snapshots are taken at the end of their files: their events are complete.
        self.trim(Some(u64::MAX));
        Ok(())
    }
}

columns! {
    /// The hit columns it reads (position unknown: not drawn).
    struct Hits from "hits" {
        event_id: Option<u64>, x_mm: Option<f32>, y_mm: Option<f32>, z_mm: Option<f32>, q_ke: f32,
    }
    struct Tracks from "tracks" {
        event_id: u64, start_x_mm: f64, start_y_mm: f64, start_z_mm: f64, end_x_mm: f64,
        end_y_mm: f64, end_z_mm: f64,
    }
}

impl Plugin for EventDisplay {
    type Settings = Settings;

    fn info() -> Info {
        Info::new("event-display", "x-y and z-y projections of a few events with their tracks")
            .help(HELP)
            .reads::<Hits>()
            .reads::<Tracks>()
    }

    fn new(mut settings: Settings, _pixels: Pixels) -> Result<Self, String> {
        if settings.event_ids.len() > 20 {
            return Err(format!("event_ids: {} events; at most 20", settings.event_ids.len()));
        }
        settings.events = settings.events.clamp(1, 20);
        Ok(Self { events: BTreeMap::new(), settings })
    }

    fn hits(&mut self, batch: &Batch) -> Result<(), String> {
        // The host hands over each calibration step's hits, then its tracks: candidates of an
        // earlier step still without tracks never get any.
        let chosen = &self.settings.event_ids;
        self.events.retain(|id, e| !e.tracks.is_empty() || chosen.contains(id));
        let full =
            self.settings.pick == Pick::First && self.picked().count() >= self.settings.events;
        let Hits { event_id: event, x_mm: x, y_mm: y, z_mm: z, q_ke: q, rows } = Hits::read(batch)?;
        // Hits come in runs of one event: each run is judged and finds its event once.
        for run in runs(rows, |i| event[i]) {
            let first = event[run.start];
            let placed = run.filter_map(|i| Some([x[i]?, y[i]?, z[i]?, q[i]]));
            let (Some(e), mut placed) = (first, placed.peekable()) else { continue };
            // Every event of the step is a candidate (for `first`, until enough with tracks are
            // found); memory is bounded by one step, and a step of many small events cannot
            // crowd out later ones. An event is kept from its first hit with a position.
            let skipped =
                full && !self.events.contains_key(&e) && !self.settings.event_ids.contains(&e);
            if placed.peek().is_some() && !skipped {
                self.events.entry(e).or_default().hits.extend(placed);
            }
        }
        Ok(())
    }

    fn tracks(&mut self, batch: &Batch) -> Result<(), String> {
        let t = Tracks::read(batch)?;
        let (event, values) = (
            t.event_id,
            [t.start_x_mm, t.start_y_mm, t.start_z_mm, t.end_x_mm, t.end_y_mm, t.end_z_mm],
        );
        let mut last = None;
        for i in 0..t.rows {
            if let Some(e) = self.events.get_mut(&event[i]) {
                e.tracks.push(std::array::from_fn(|k| values[k][i]));
            }
            last = last.max(Some(event[i]));
        }
        // Events up to the last one with tracks in this batch are complete.
        self.trim(last);
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let mut report = Report::new();
        let chosen =
            self.settings.event_ids.iter().filter_map(|id| Some((*id, self.events.get(id)?)));
        let picked = self.picked().map(|id| (id, &self.events[&id]));
        for (id, event) in chosen.chain(picked) {
            let title = if self.settings.event_ids.contains(&id) {
                format!("Event {id} (chosen)")
            } else {
                format!("Event {id}")
            };
            report = report.figure(&format!("event_{id}"), &title, draw(id, event), &event.tracks);
        }
        let shown = self.picked().count();
        let status = if shown > 0 { CheckStatus::Ok } else { CheckStatus::Warning };
        let which = if self.settings.pick == Pick::Latest { "latest" } else { "first" };
        let message = if shown > 0 {
            format!("the {which} {shown} triggered events with tracks shown")
        } else {
            "no triggered event with a track: no external triggers, or tracking found nothing"
                .into()
        };
        report = report.metric("events_shown", shown as f64, None, "events").check(
            "events_with_tracks",
            status,
            message,
        );
        let missing: Vec<String> = self
            .settings
            .event_ids
            .iter()
            .filter(|id| !self.events.contains_key(id))
            .map(u64::to_string)
            .collect();
        if !missing.is_empty() {
            report = report.check(
                "chosen_events",
                CheckStatus::Warning,
                format!("chosen events not in this run's data: {}", missing.join(", ")),
            );
        }
        Ok(report)
    }
}

fn draw(id: u64, event: &Event) -> String {
    let mut svg = String::new();
    let result = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(&mut svg, (810, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(
                &format!(
                    "Event {id}: {} hits, {} track{}",
                    event.hits.len(),
                    event.tracks.len(),
                    if event.tracks.len() == 1 { "" } else { "s" }
                ),
                ("sans-serif", 22),
            )
            .map_err(|e| e.to_string())?;
        let (panels, bar) = root.split_horizontally(720);
        let (left, right) = panels.split_horizontally(360);
        let qmax = event.hits.iter().map(|h| f64::from(h[3])).fold(1.0, f64::max);
        svg::colour_bar(&bar, "hit charge [ke⁻]", (0.0, qmax), 30, false)?;
        let bound = |k: usize| {
            let lo = event.hits.iter().map(|h| f64::from(h[k])).fold(f64::INFINITY, f64::min);
            let hi = event.hits.iter().map(|h| f64::from(h[k])).fold(f64::NEG_INFINITY, f64::max);
            let pad = ((hi - lo) * 0.08).max(10.0);
            if lo.is_finite() { (lo - pad)..(hi + pad) } else { 0.0..1.0 }
        };
        for (area, (h, label)) in
            [(&left, (0usize, "x [mm]")), (&right, (2usize, "z (drift) [mm]"))]
        {
            let mut chart = ChartBuilder::on(area)
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(bound(h), bound(1))
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc(label)
                .y_desc("y [mm]")
                .axis_desc_style(("sans-serif", 15))
                .label_style(("sans-serif", 12))
                .x_labels(5)
                .x_label_formatter(&|v| svg::tick_label(*v))
                .y_label_formatter(&|v| svg::tick_label(*v))
                .draw()
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(event.hits.iter().map(|p| {
                    let color = ViridisRGB.get_color_normalized(f64::from(p[3]), 0.0, qmax);
                    Circle::new((f64::from(p[h]), f64::from(p[1])), 2, color.filled())
                }))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(event.tracks.iter().map(|t| {
                    PathElement::new(
                        [(t[h], t[1]), (t[3 + h], t[4])],
                        RGBColor(214, 39, 40).stroke_width(2),
                    )
                }))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    })();
    match result {
        Ok(()) => svg,
        Err(e) => format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"810\" height=\"60\"><text x=\"10\" y=\"30\">plot failed: {}</text></svg>",
            e.replace('<', "&lt;")
        ),
    }
}

export_plugin!(EventDisplay);

//! event-display: the quick look: for the first few triggered events with tracks, the hits in
//! the x–y (pixel plane) and z–y (drift vs height) projections, coloured by charge, with the
//! fitted tracks drawn over them.

use std::collections::BTreeMap;

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

#[derive(Serialize, Deserialize)]
struct EventDisplay {
    events: BTreeMap<u64, Event>,
    wanted: usize,
}

impl EventDisplay {
    fn with_tracks(&self) -> usize {
        self.events.values().filter(|e| !e.tracks.is_empty()).count()
    }
}

impl Plugin for EventDisplay {
    fn info() -> Info {
        Info::new("event-display", "x-y and z-y projections of a few events with their tracks")
            .consumes("hits", &["event_id", "x_mm", "y_mm", "z_mm", "q_ke"])
            .consumes(
                "tracks",
                &[
                    "event_id",
                    "start_x_mm",
                    "start_y_mm",
                    "start_z_mm",
                    "end_x_mm",
                    "end_y_mm",
                    "end_z_mm",
                ],
            )
            .config_key("events")
    }

    fn new(config: &Config) -> Result<Self, String> {
        Ok(Self {
            events: BTreeMap::new(),
            wanted: config_number(config, "events", 4.0).clamp(1.0, 20.0) as usize,
        })
    }

    fn hits(&mut self, batch: &Batch) -> Result<(), String> {
        // The host hands over each calibration step's hits, then its tracks: candidates of an
        // earlier step still without tracks never get any.
        self.events.retain(|_, e| !e.tracks.is_empty());
        let event = batch.opt_u64("event_id")?;
        let (x, y, z) = (batch.opt_f32("x_mm")?, batch.opt_f32("y_mm")?, batch.opt_f32("z_mm")?);
        let q = batch.f32("q_ke")?;
        for i in 0..batch.len() {
            let (Some(e), Some(x), Some(y), Some(z)) = (event[i], x[i], y[i], z[i]) else {
                continue;
            };
            // Every event of the step is a candidate until enough with tracks are found (memory
            // bounded by one step; a step of many small events cannot crowd out later ones).
            if !self.events.contains_key(&e) && self.with_tracks() >= self.wanted {
                continue;
            }
            self.events.entry(e).or_default().hits.push([x, y, z, q[i]]);
        }
        Ok(())
    }

    fn tracks(&mut self, batch: &Batch) -> Result<(), String> {
        let event = batch.u64("event_id")?;
        let columns =
            ["start_x_mm", "start_y_mm", "start_z_mm", "end_x_mm", "end_y_mm", "end_z_mm"];
        let values: Vec<&[f64]> = columns.iter().map(|c| batch.f64(c)).collect::<Result<_, _>>()?;
        let mut last = None;
        for i in 0..batch.len() {
            if let Some(e) = self.events.get_mut(&event[i]) {
                e.tracks.push(std::array::from_fn(|k| values[k][i]));
            }
            last = last.max(Some(event[i]));
        }
        // Events up to the last one with tracks in this batch are complete: keep those with tracks.
        if let Some(last) = last {
            self.events.retain(|id, e| *id > last || !e.tracks.is_empty());
        }
        while self.events.iter().filter(|(_, e)| !e.tracks.is_empty()).count() > self.wanted {
            let Some(last) = self.events.keys().next_back().copied() else { break };
            self.events.remove(&last);
        }
        Ok(())
    }

    fn merge(&mut self, other: Self) -> Result<(), String> {
        self.events.extend(other.events);
        while self.events.len() > self.wanted {
            let last = *self.events.keys().next_back().expect("not empty");
            self.events.remove(&last);
        }
        Ok(())
    }

    fn report(&self) -> Result<Report, String> {
        let mut report = Report::new();
        for (id, event) in
            self.events.iter().filter(|(_, e)| !e.tracks.is_empty()).take(self.wanted)
        {
            report = report.figure(
                &format!("event_{id}"),
                &format!("Event {id}"),
                draw(*id, event),
                &event.tracks,
            );
        }
        let shown = self.events.values().filter(|e| !e.tracks.is_empty()).count().min(self.wanted);
        let status = if shown > 0 { CheckStatus::Ok } else { CheckStatus::Warning };
        let message = if shown > 0 {
            format!("{shown} triggered events with tracks shown")
        } else {
            "no triggered event with a track: no external triggers, or tracking found nothing"
                .into()
        };
        Ok(report.metric("events_shown", shown as f64, None, "events").check(
            "events_with_tracks",
            status,
            message,
        ))
    }
}

fn draw(id: u64, event: &Event) -> String {
    let mut svg = String::new();
    let result = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(&mut svg, (720, 480)).into_drawing_area();
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
        let (left, right) = root.split_horizontally(360);
        let qmax = event.hits.iter().map(|h| f64::from(h[3])).fold(1.0, f64::max);
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
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"60\"><text x=\"10\" y=\"30\">plot failed: {}</text></svg>",
            e.replace('<', "&lt;")
        ),
    }
}

export_plugin!(EventDisplay);

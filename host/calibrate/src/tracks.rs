//! Straight-track finding in one event (calibration-dq.md §2.1, our own implementation):
//!
//! 1. RANSAC: among the event's unused hits (with x, y, z), lines through random pairs; the line
//!    with the most hits within `inlier_mm` wins (deterministic: seeded by the event id);
//! 2. PCA refit on those inliers (centroid + principal axis), inliers collected again;
//! 3. the inliers are split along the axis where consecutive projections are more than
//!    `max_gap_mm` apart (a DBSCAN on the line); each piece with ≥ `min_hits` hits and length
//!    ≥ `min_length_mm` is a track; its hits are removed and the search repeats.
//!
//! Each track is cut into segments of `segment_mm` along its axis: summed charge `dq`, length
//! `dx`, mean drift time and centre — the inputs of dQ/dx and electron-lifetime plots.

use serde::{Deserialize, Serialize};

use crate::output::{CalibratedBatch, HitSlice};

/// Track-finding parameters (`[tracks]` in the detector configuration).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrackConfig {
    /// Find tracks at all.
    pub enabled: bool,
    /// A hit belongs to a line when closer than this, mm.
    pub inlier_mm: f64,
    /// Pieces of a line farther apart than this along it are separate tracks, mm.
    pub max_gap_mm: f64,
    /// Fewest hits of a track.
    pub min_hits: usize,
    /// Shortest track, mm.
    pub min_length_mm: f64,
    /// Random line candidates per search.
    pub ransac_trials: usize,
    /// Most tracks per event.
    pub max_tracks: usize,
    /// Segment length for dQ/dx, mm.
    pub segment_mm: f64,
}

impl Default for TrackConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            inlier_mm: 8.0,
            max_gap_mm: 25.0,
            min_hits: 5,
            min_length_mm: 20.0,
            ransac_trials: 200,
            max_tracks: 20,
            segment_mm: 10.0,
        }
    }
}

/// One straight track.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackRow {
    /// Sequential id within the stream.
    pub track_id: u64,
    /// Event of the track.
    pub event_id: u64,
    /// Start point (the end with the larger y: cosmics come from above), mm.
    pub start: [f64; 3],
    /// End point, mm.
    pub end: [f64; 3],
    /// |end − start|, mm.
    pub length_mm: f64,
    /// Unit vector from start to end.
    pub direction: [f64; 3],
    /// Hits on the track.
    pub n_hits: u32,
    /// Summed hit charge, ke⁻.
    pub q_ke: f64,
    /// TPCs the hits are in (bit k set for TPC k, k < 32).
    pub tpc_mask: u32,
    /// Whether t0 (hence z) is known.
    pub has_t0: bool,
    /// Mean distance of the hits from the line, mm.
    pub mean_residual_mm: f64,
}

/// A piece of a track of about `segment_mm`.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentRow {
    /// Track of the segment.
    pub track_id: u64,
    /// Event of the track.
    pub event_id: u64,
    /// Index along the track from its start.
    pub index: u32,
    /// Charge of the hits projecting into the segment, ke⁻.
    pub dq_ke: f64,
    /// Segment length, mm.
    pub dx_mm: f64,
    /// Mean drift time of its hits, µs.
    pub drift_us: f64,
    /// Segment centre, mm.
    pub center: [f64; 3],
    /// Hits in the segment.
    pub n_hits: u32,
}

/// The charge one pixel collected from one track, with the length of track above that pixel:
/// the unit of dQ/dx in a pixel detector (`q_ke / dx_mm`).
#[derive(Clone, Debug, PartialEq)]
pub struct TrackPixelRow {
    /// Track.
    pub track_id: u64,
    /// Event of the track.
    pub event_id: u64,
    /// Channel (as read).
    pub io_group: u8,
    /// UART channel.
    pub io_channel: u8,
    /// Chip.
    pub chip_id: u8,
    /// Channel of the chip.
    pub channel_id: u8,
    /// TPC of the pixel.
    pub tpc: u8,
    /// Pixel centre, mm.
    pub x_mm: f64,
    /// Pixel centre, mm.
    pub y_mm: f64,
    /// Charge-weighted drift coordinate of its hits, mm.
    pub z_mm: f64,
    /// Charge-weighted drift time of its hits, µs.
    pub drift_us: f64,
    /// Summed charge of the pixel's hits on the track, ke⁻.
    pub q_ke: f64,
    /// Length of the fitted track inside the pixel's column (pitch × pitch, along the drift),
    /// clipped to the track's extent, mm; 0 when the line misses the pixel.
    pub dx_mm: f64,
    /// Position of that piece's centre along the track from its start, mm.
    pub s_mm: f64,
    /// The piece was clipped by the track's start or end (its dx is not a full crossing).
    pub at_track_end: bool,
    /// Hits summed.
    pub n_hits: u32,
    /// Length of the track, mm.
    pub track_length_mm: f64,
    /// TPCs of the track (bit k = TPC k).
    pub track_tpc_mask: u32,
}

type V3 = [f64; 3];

fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}
fn scale(a: V3, s: f64) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// Distance of `p` from the line through `origin` along the unit vector `axis`.
fn distance(p: V3, origin: V3, axis: V3) -> f64 {
    squared_distance(p, origin, axis).sqrt()
}

/// [`distance`] squared: compared with a [`squared_limit`], the same decision without the
/// square root.
#[inline]
fn squared_distance(p: V3, origin: V3, axis: V3) -> f64 {
    let d = sub(p, origin);
    let along = dot(d, axis);
    (dot(d, d) - along * along).max(0.0)
}

/// Points a RANSAC count takes at a time before it checks whether the line can still win.
const POINTS_PER_CHECK: usize = 32;

/// Points as three coordinate arrays: the RANSAC count runs over them in a loop without
/// branches that the compiler vectorises, with the same operations as [`distance`] up to the
/// square root, which it replaces by the exact squared limit (the same counts, bit for bit).
#[derive(Clone)]
struct Coordinates {
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
}

/// A RANSAC line to count points for: through `origin` along the unit vector `axis`, points
/// within the limit whose [`squared_limit`] is `squared_limit`, worth counting only if more than
/// `to_beat` (if any).
#[derive(Clone, Copy)]
struct Candidate {
    origin: V3,
    axis: V3,
    squared_limit: f64,
    to_beat: Option<usize>,
}

impl Coordinates {
    fn of(points: &[(usize, V3)]) -> Self {
        Self {
            x: points.iter().map(|(_, p)| p[0]).collect(),
            y: points.iter().map(|(_, p)| p[1]).collect(),
            z: points.iter().map(|(_, p)| p[2]).collect(),
        }
    }

    /// How many points lie within `limit` of the candidate's line, as [`distance`]` <= limit`
    /// counts them, if that is more than its `to_beat`; `None` otherwise. A line that has
    /// already missed more points than a winner may miss is dropped there, [`POINTS_PER_CHECK`]
    /// points at a time: most candidates of an event with one track are, well before its last
    /// point. Four points at a time on CPUs with AVX2 (the same operations in the same order:
    /// Rust never fuses a multiply and an add on its own, so the counts are the same).
    fn count_more_than(&self, line: &Candidate) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { self.count_more_than_avx2(line) };
        }
        self.count_more_than_portable(line)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn count_more_than_avx2(&self, line: &Candidate) -> Option<usize> {
        self.count_more_than_portable(line)
    }

    #[inline(always)]
    fn count_more_than_portable(&self, line: &Candidate) -> Option<usize> {
        let Candidate { origin, axis, squared_limit, to_beat } = *line;
        let n = self.x.len();
        // A winner counts at least to_beat + 1 points, so misses at most this many.
        let misses_allowed = match to_beat {
            Some(t) => n.checked_sub(t + 1)?,
            None => n,
        };
        let mut count = 0;
        let chunks = self.x.chunks(POINTS_PER_CHECK).zip(self.y.chunks(POINTS_PER_CHECK));
        for (done, ((x, y), z)) in chunks.zip(self.z.chunks(POINTS_PER_CHECK)).enumerate() {
            for ((x, y), z) in x.iter().zip(y).zip(z) {
                let d = [x - origin[0], y - origin[1], z - origin[2]];
                let along = dot(d, axis);
                count += usize::from((dot(d, d) - along * along).max(0.0) <= squared_limit);
            }
            let seen = done * POINTS_PER_CHECK + x.len();
            if seen - count > misses_allowed {
                return None;
            }
        }
        to_beat.is_none_or(|t| count > t).then_some(count)
    }

    /// Reorders the points so that those the line does not count come first. A count does not
    /// depend on the order of the points, and neither does [`Coordinates::count_more_than`]'s
    /// answer: a line that wins never misses more points than it may, wherever they come, and
    /// one that does not win is `None` whether it stops early or counts to the end. Put behind
    /// the misses of the best line so far, a line that cannot beat it — most often one through
    /// two points of the same track, missing about the same points — stops after those misses
    /// instead of counting the whole track.
    fn put_misses_first(&mut self, line: &Candidate) {
        let Candidate { origin, axis, squared_limit, .. } = *line;
        let mut misses = 0;
        for k in 0..self.x.len() {
            let d = [self.x[k] - origin[0], self.y[k] - origin[1], self.z[k] - origin[2]];
            let along = dot(d, axis);
            if (dot(d, d) - along * along).max(0.0) > squared_limit {
                self.x.swap(k, misses);
                self.y.swap(k, misses);
                self.z.swap(k, misses);
                misses += 1;
            }
        }
    }

    fn swap_remove(&mut self, k: usize) {
        self.x.swap_remove(k);
        self.y.swap_remove(k);
        self.z.swap_remove(k);
    }
}

/// The largest `t` with `t.sqrt() <= limit`: `x.sqrt() <= limit` exactly when `x <= t` (the
/// square root is correctly rounded, hence monotone), without a square root per point.
fn squared_limit(limit: f64) -> f64 {
    if limit.is_nan() || limit < 0.0 {
        return f64::NAN; // no distance is within it: every comparison is false
    }
    let mut t = limit * limit;
    while t.sqrt() > limit {
        t = t.next_down();
    }
    while t.next_up().sqrt() <= limit && t < f64::INFINITY {
        t = t.next_up();
    }
    t
}

/// Centroid and principal axis (largest-eigenvalue eigenvector of the covariance, by power
/// iteration — the 3×3 case needs nothing more).
fn pca(points: &[V3]) -> (V3, V3) {
    let n = points.len() as f64;
    let c = points.iter().fold([0.0; 3], |acc, p| add(acc, *p));
    let c = scale(c, 1.0 / n);
    let mut cov = [[0.0; 3]; 3];
    for p in points {
        let d = sub(*p, c);
        for i in 0..3 {
            for j in 0..3 {
                cov[i][j] += d[i] * d[j];
            }
        }
    }
    // Start from the direction of the farthest point from the centroid.
    let far = points
        .iter()
        .map(|p| sub(*p, c))
        .fold([0.0; 3], |best, d| if dot(d, d) > dot(best, best) { d } else { best });
    let mut v = if norm(far) > 0.0 { scale(far, 1.0 / norm(far)) } else { [1.0, 0.0, 0.0] };
    for _ in 0..50 {
        let w = [dot(cov[0], v), dot(cov[1], v), dot(cov[2], v)];
        let len = norm(w);
        if len == 0.0 {
            break;
        }
        v = scale(w, 1.0 / len);
    }
    (c, v)
}

/// A small deterministic generator (xorshift64*), so results do not depend on the run.
struct Rng(u64);
impl Rng {
    /// A number below `n` (the tests' reference for [`Rng::below_bound`]).
    #[cfg(test)]
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// [`Rng::below`] for a fixed bound, without a division (two per RANSAC candidate, a
    /// fifth of a search's own time once counts stop early).
    fn below_bound(&mut self, bound: &Bound) -> usize {
        bound.remainder(self.next())
    }

    /// The next 31 random bits.
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33
    }
}

/// A bound `n` with what it takes to find `x % n` by multiplications (Lemire, Kaser & Kurz,
/// "Faster remainder by direct computation", 2019: exact for 32-bit `x` and `n`); larger
/// bounds divide.
struct Bound {
    n: u64,
    /// `⌈2⁶⁴ / n⌉` for `1 ≤ n < 2³²`, else `None`.
    inverse: Option<u64>,
}

impl Bound {
    fn new(n: usize) -> Self {
        let n = n as u64;
        let inverse = (1..1 << 32).contains(&n).then(|| (u64::MAX / n).wrapping_add(1));
        Self { n, inverse }
    }

    /// `x % n` (`x < 2³²`, as [`Rng::next`] gives).
    #[inline]
    fn remainder(&self, x: u64) -> usize {
        match self.inverse {
            Some(inverse) if x < 1 << 32 => {
                let low = inverse.wrapping_mul(x);
                ((u128::from(low) * u128::from(self.n)) >> 64) as usize
            }
            _ => (x % self.n) as usize,
        }
    }
}

/// Step 1: of `config.ransac_trials` lines through random pairs of `points` (`coordinates`
/// holds the same points), the first with the most points within the inlier distance, if that
/// is at least `min_hits`: (a point on it, its unit direction). Lines with fewer than the best
/// so far cannot be the answer, so their counts are dropped as soon as that is certain, and the
/// points are counted in an order that makes that soon: the best line's misses first
/// ([`Coordinates::put_misses_first`]).
fn ransac_line(
    config: &TrackConfig,
    points: &[(usize, V3)],
    coordinates: &Coordinates,
    inlier_squared: f64,
    rng: &mut Rng,
) -> Option<(V3, V3)> {
    let mut best: Option<(usize, V3, V3)> = None;
    // The same points, in the order that is counted (`coordinates` keeps the points' order).
    let mut in_count_order = coordinates.clone();
    let bound = Bound::new(points.len());
    for _ in 0..config.ransac_trials {
        let (a, b) = (rng.below_bound(&bound), rng.below_bound(&bound));
        let d = sub(points[b].1, points[a].1);
        let len = norm(d);
        if a == b || len < config.inlier_mm {
            continue;
        }
        let axis = scale(d, 1.0 / len);
        let to_beat = best.map_or(config.min_hits.checked_sub(1), |(c, _, _)| Some(c));
        let line = Candidate { origin: points[a].1, axis, squared_limit: inlier_squared, to_beat };
        if let Some(count) = in_count_order.count_more_than(&line) {
            best = Some((count, points[a].1, axis));
            in_count_order.put_misses_first(&line);
        }
    }
    best.map(|(_, origin, axis)| (origin, axis))
}

/// What a track's hits give its segments and pixels: the hit's fields the track finder reads,
/// copied out of the event's columns for the hits of a track only.
struct TrackHit {
    /// (io_group, io_channel, chip_id, channel_id).
    channel: (u8, u8, u8, u8),
    tpc: Option<u8>,
    q_ke: f32,
    /// Pixel x, y and drift coordinate z, mm (all known: the hit is a point of the search).
    xyz: V3,
    drift_ticks: Option<f32>,
    /// Whether the hit's event has a t0.
    has_t0: bool,
}

/// What [`find_tracks`] found in one event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventTracks {
    /// The tracks.
    pub tracks: Vec<TrackRow>,
    /// Their segments.
    pub segments: Vec<SegmentRow>,
    /// Charge and track length per pixel of each track.
    pub pixels: Vec<TrackPixelRow>,
    /// (index into the event's hits, track id) for every hit on a track.
    pub assignments: Vec<(usize, u64)>,
}

/// The interval of `s` in `[s0, s1]` where the line `center + axis·s` lies above the pixel
/// (a square column of side `pitch` around `(px, py)`, unbounded along z).
fn pixel_chord(
    center: V3,
    axis: V3,
    (s0, s1): (f64, f64),
    (px, py): (f64, f64),
    pitch: f64,
) -> (f64, f64) {
    let (mut lo, mut hi) = (s0, s1);
    for (c, a, p) in [(center[0], axis[0], px), (center[1], axis[1], py)] {
        let (edge_lo, edge_hi) = (p - pitch / 2.0, p + pitch / 2.0);
        if a.abs() < 1e-12 {
            if c < edge_lo || c > edge_hi {
                return (0.0, 0.0);
            }
            continue;
        }
        let (t1, t2) = ((edge_lo - c) / a, (edge_hi - c) / a);
        lo = lo.max(t1.min(t2));
        hi = hi.min(t1.max(t2));
    }
    if hi > lo { (lo, hi) } else { (0.0, 0.0) }
}

/// Tracks one triggered event whose hits are `out.hits[first_hit..]` (nothing if tracking is
/// off): each hit on a track gets its id; tracks, segments and track pixels are appended to
/// `out`, with ids from `first_track_id`. Returns how many tracks were found. How the
/// ndlar_flow input adds tracks; larmon's calibrator searches a batch's events in parallel and
/// adds them the same way, with [`EventTracks::add_to`].
pub fn add_event_tracks(
    config: &TrackConfig,
    event_id: u64,
    out: &mut CalibratedBatch,
    first_hit: usize,
    clock_mhz: f64,
    pitch_of_tpc: &dyn Fn(u8) -> f64,
    first_track_id: u64,
) -> u64 {
    if !config.enabled {
        return 0;
    }
    let hits = out.hits.slice(first_hit..out.hits.len());
    let found = find_tracks(config, event_id, hits, clock_mhz, pitch_of_tpc, 0);
    found.add_to(out, first_hit, first_track_id)
}

impl EventTracks {
    /// Appends the tracks of an event whose hits start at `out.hits[first_hit]`, found with ids
    /// from 0, renumbered from `first_track_id`: each hit on a track gets its id; tracks,
    /// segments and track pixels go to the end of `out`. Returns how many tracks there were.
    pub fn add_to(
        mut self,
        out: &mut CalibratedBatch,
        first_hit: usize,
        first_track_id: u64,
    ) -> u64 {
        self.tracks.iter_mut().for_each(|t| t.track_id += first_track_id);
        self.segments.iter_mut().for_each(|s| s.track_id += first_track_id);
        self.pixels.iter_mut().for_each(|p| p.track_id += first_track_id);
        for (i, track_id) in self.assignments {
            out.hits.set_track_id(first_hit + i, Some(first_track_id + track_id));
        }
        let count = self.tracks.len() as u64;
        out.tracks.extend(self.tracks);
        out.segments.extend(self.segments);
        out.track_pixels.extend(self.pixels);
        count
    }
}

/// The working buffers of [`find_tracks`], kept from event to event on each thread (allocating
/// them afresh for every candidate line and track was 5 % of calibration's time).
#[derive(Default)]
struct TrackScratch {
    inliers: Vec<V3>,
    on_line: Vec<(f64, usize)>,
    pieces: Vec<std::ops::Range<usize>>,
    taken: Vec<usize>,
    member_hits: Vec<TrackHit>,
    segment_sums: Vec<(f64, f64, u32)>,
    by_pixel: Vec<u64>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<TrackScratch> = std::cell::RefCell::default();
}

/// Finds the tracks of one event among `hits` (those without x, y, z are ignored); track ids
/// start at `first_track_id`.
pub fn find_tracks(
    config: &TrackConfig,
    event_id: u64,
    hits: HitSlice<'_>,
    clock_mhz: f64,
    pitch_of_tpc: &dyn Fn(u8) -> f64,
    first_track_id: u64,
) -> EventTracks {
    with_track_scratch(|scratch| {
        let TrackScratch { inliers, on_line, pieces, taken, member_hits, segment_sums, by_pixel } =
            scratch;
        let mut tracks = Vec::new();
        let mut segments = Vec::new();
        let mut pixels = Vec::new();
        let mut assignments = Vec::new();
        let points: Vec<(usize, V3)> = (0..hits.len())
            .filter_map(|i| {
                let [x, y, z] = hits.xyz(i)?;
                Some((i, [f64::from(x), f64::from(y), f64::from(z)]))
            })
            .collect();
        let mut unused: Vec<(usize, V3)> = points;
        // The same points by coordinate, for the RANSAC count (a loop the compiler vectorises).
        let mut coordinates = Coordinates::of(&unused);
        let inlier_squared = squared_limit(config.inlier_mm);
        let mut rng = Rng(event_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut failures = 0;
        while unused.len() >= config.min_hits && tracks.len() < config.max_tracks && failures < 3 {
            // 1. RANSAC
            let Some((origin, axis)) =
                ransac_line(config, &unused, &coordinates, inlier_squared, &mut rng)
            else {
                break;
            };
            // 2. PCA refit and inliers again
            inliers.clear();
            inliers.extend(
                unused
                    .iter()
                    .filter(|(_, p)| squared_distance(*p, origin, axis) <= inlier_squared)
                    .map(|(_, p)| *p),
            );
            let (center, mut axis) = pca(inliers);
            if axis[1] > 0.0 || (axis[1] == 0.0 && axis[0] < 0.0) {
                axis = scale(axis, -1.0); // start at the top: cosmics go down
            }
            on_line.clear();
            on_line.extend(
                unused
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, p))| squared_distance(*p, center, axis) <= inlier_squared)
                    .map(|(k, (_, p))| (dot(sub(*p, center), axis), k)),
            );
            // By position along the line, ties in the points' order (what a stable sort keeps),
            // without a stable sort's scratch allocation.
            on_line.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            // 3. split at gaps
            pieces.clear();
            let mut start = 0;
            for i in 1..=on_line.len() {
                if i == on_line.len() || on_line[i].0 - on_line[i - 1].0 > config.max_gap_mm {
                    pieces.push(start..i);
                    start = i;
                }
            }
            taken.clear();
            for piece in pieces.iter() {
                let piece = &on_line[piece.clone()];
                let (s0, s1) = (piece[0].0, piece[piece.len() - 1].0);
                if piece.len() < config.min_hits || s1 - s0 < config.min_length_mm {
                    continue;
                }
                let track_id = first_track_id + tracks.len() as u64;
                member_hits.clear();
                member_hits.extend(piece.iter().map(|(_, k)| {
                    let (i, [x, y, z]) = unused[*k];
                    TrackHit {
                        channel: hits.channel(i),
                        tpc: hits.tpc(i),
                        q_ke: hits.q_ke(i),
                        xyz: [x, y, z],
                        drift_ticks: hits.drift_ticks(i),
                        has_t0: hits.t0_ticks(i).is_some(),
                    }
                }));
                let start_point = add(center, scale(axis, s0));
                let end_point = add(center, scale(axis, s1));
                let residual =
                    piece.iter().map(|(_, k)| distance(unused[*k].1, center, axis)).sum::<f64>()
                        / piece.len() as f64;
                let mut tpc_mask = 0u32;
                for h in member_hits.iter() {
                    if let Some(t) = h.tpc.filter(|t| *t < 32) {
                        tpc_mask |= 1 << t;
                    }
                }
                tracks.push(TrackRow {
                    track_id,
                    event_id,
                    start: start_point,
                    end: end_point,
                    length_mm: s1 - s0,
                    direction: axis,
                    n_hits: piece.len() as u32,
                    q_ke: member_hits.iter().map(|h| f64::from(h.q_ke)).sum(),
                    tpc_mask,
                    has_t0: member_hits.iter().all(|h| h.has_t0),
                    mean_residual_mm: residual,
                });
                // segments of segment_mm along the axis
                let n_segments = ((s1 - s0) / config.segment_mm).ceil().max(1.0) as usize;
                let dx = (s1 - s0) / n_segments as f64;
                segment_sums.clear();
                segment_sums.resize(n_segments, (0.0, 0.0, 0));
                // Room for the track's rows at once (pushed one by one they were copied over
                // at every doubling: 1.3 % of a run's CPU).
                segments.reserve(n_segments);
                for ((s, _), h) in piece.iter().zip(member_hits.iter()) {
                    let i = (((s - s0) / dx) as usize).min(n_segments - 1);
                    segment_sums[i].0 += f64::from(h.q_ke);
                    segment_sums[i].1 += f64::from(h.drift_ticks.unwrap_or(0.0));
                    segment_sums[i].2 += 1;
                }
                for (i, &(dq, drift_ticks, n)) in segment_sums.iter().enumerate() {
                    if n == 0 {
                        continue;
                    }
                    segments.push(SegmentRow {
                        track_id,
                        event_id,
                        index: i as u32,
                        dq_ke: dq,
                        dx_mm: dx,
                        drift_us: drift_ticks / f64::from(n) / clock_mhz,
                        center: add(center, scale(axis, s0 + (i as f64 + 0.5) * dx)),
                        n_hits: n,
                    });
                }
                // charge and track length per pixel
                // (grouped by channel in channel order, each pixel's hits in the order along the line)
                // Ties in the order along the line, as a stable sort keeps them: sorted as one
                // integer per hit, the channel's four bytes in their order above the hit's place
                // (sorting the hits themselves by channel was 7 % of calibration's time).
                by_pixel.clear();
                by_pixel.extend(member_hits.iter().enumerate().map(|(k, h)| {
                    let (io_group, io_channel, chip_id, channel_id) = h.channel;
                    let channel = u32::from_be_bytes([io_group, io_channel, chip_id, channel_id]);
                    (u64::from(channel) << 32) | k as u64
                }));
                by_pixel.sort_unstable();
                pixels.reserve(by_pixel.len()); // at most one row per hit
                let hit = |key: &u64| &member_hits[(key & 0xFFFF_FFFF) as usize];
                for pixel_hits in by_pixel.chunk_by(|a, b| a >> 32 == b >> 32) {
                    let first = hit(&pixel_hits[0]);
                    let (io_group, io_channel, chip_id, channel_id) = first.channel;
                    let [px, py, _] = first.xyz;
                    let q: f64 = pixel_hits.iter().map(|k| f64::from(hit(k).q_ke)).sum();
                    let weight = |h: &TrackHit| {
                        if q > 0.0 { f64::from(h.q_ke) / q } else { 1.0 / pixel_hits.len() as f64 }
                    };
                    let mean = |value: &dyn Fn(&TrackHit) -> f64| {
                        pixel_hits.iter().map(|k| weight(hit(k)) * value(hit(k))).sum::<f64>()
                    };
                    let pitch = pitch_of_tpc(first.tpc.unwrap_or(0));
                    let (lo, hi) = pixel_chord(center, axis, (s0, s1), (px, py), pitch);
                    pixels.push(TrackPixelRow {
                        track_id,
                        event_id,
                        io_group,
                        io_channel,
                        chip_id,
                        channel_id,
                        tpc: first.tpc.unwrap_or(0),
                        x_mm: px,
                        y_mm: py,
                        z_mm: mean(&|h| h.xyz[2]),
                        drift_us: mean(&|h| f64::from(h.drift_ticks.unwrap_or(0.0))) / clock_mhz,
                        q_ke: q,
                        dx_mm: hi - lo,
                        s_mm: (lo + hi) / 2.0 - s0,
                        at_track_end: hi > lo && (lo <= s0 + 1e-9 || hi >= s1 - 1e-9),
                        n_hits: pixel_hits.len() as u32,
                        track_length_mm: s1 - s0,
                        track_tpc_mask: tpc_mask,
                    });
                }
                assignments.extend(piece.iter().map(|(_, k)| (unused[*k].0, track_id)));
                taken.extend(piece.iter().map(|(_, k)| *k));
            }
            if taken.is_empty() {
                failures += 1;
                continue;
            }
            taken.sort_unstable();
            for &k in taken.iter().rev() {
                unused.swap_remove(k);
                coordinates.swap_remove(k);
            }
        }
        EventTracks { tracks, segments, pixels, assignments }
    })
}

/// Runs `search` with this thread's [`TrackScratch`] (a fresh one if it is in use).
fn with_track_scratch<R>(search: impl FnOnce(&mut TrackScratch) -> R) -> R {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => search(&mut scratch),
        Err(_) => search(&mut TrackScratch::default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x <= squared_limit(l)` says what `x.sqrt() <= l` says (x ≥ 0), at the boundary too, for the
    /// default inlier distance and awkward ones.
    #[test]
    fn the_squared_limit_decides_as_the_square_root_does() {
        for limit in [8.0, 0.1, 1.0 / 3.0, 7.3, 1e-3, 0.0, 12345.678, f64::MAX.sqrt()] {
            let t = squared_limit(limit);
            let mut x = (limit * limit).next_down().next_down().next_down();
            for _ in 0..8 {
                let x_or_0 = x.max(0.0); // as the distance computes it
                assert_eq!(x_or_0.sqrt() <= limit, x_or_0 <= t, "limit {limit}, x {x:e}");
                x = x.next_up();
            }
            assert!(t.sqrt() <= limit && t.next_up().sqrt() > limit, "limit {limit}");
        }
        assert!(squared_limit(-1.0).is_nan(), "nothing is within a negative distance");
    }

    /// The remainder by multiplications is the remainder, for any bound and random value.
    #[test]
    fn remainders_by_multiplication_are_remainders() {
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        let bounds = [1, 2, 3, 7, 200, 4095, 65_537, 1 << 31, (1 << 32) - 1, 1 << 32, 1 << 40];
        let random: Vec<usize> = (0..2000).map(|_| 1 + rng.next() as usize).collect();
        for n in bounds.into_iter().chain(random) {
            let bound = Bound::new(n);
            for x in [0, 1, n as u64 - 1, n as u64, (1 << 31) - 1, (1 << 32) - 1, 1 << 32] {
                assert_eq!(bound.remainder(x), (x % n as u64) as usize, "{x} % {n}");
            }
            for _ in 0..200 {
                let x = rng.next();
                assert_eq!(bound.remainder(x), (x % n as u64) as usize, "{x} % {n}");
            }
        }
    }

    /// The vectorised count (with and without AVX2) equals counting [`distance`]` <= limit`
    /// point by point, on points scattered near a line (many at the boundary) and lines through
    /// them, when it is more than the count to beat, and is `None` when it is not.
    #[test]
    fn the_ransac_count_is_the_distance_count() {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let mut uniform =
            |scale: f64| (rng.below(1 << 20) as f64 / f64::from(1 << 20) - 0.5) * scale;
        let points: Vec<(usize, V3)> = (0..2000)
            .map(|i| {
                let s = uniform(600.0);
                (i, [s * 0.6 + uniform(20.0), s * 0.8 + uniform(20.0), uniform(20.0)])
            })
            .collect();
        let coordinates = Coordinates::of(&points);
        for (a, b) in [(0, 1), (5, 900), (17, 1999), (400, 401)] {
            let d = sub(points[b].1, points[a].1);
            let axis = scale(d, 1.0 / norm(d));
            for limit in [8.0, 3.3, 0.5] {
                let expected =
                    points.iter().filter(|(_, p)| distance(*p, points[a].1, axis) <= limit).count();
                let limit_squared = squared_limit(limit);
                for to_beat in [None, Some(0), Some(expected - 1), Some(expected), Some(1999)] {
                    let wins = to_beat.is_none_or(|t| expected > t).then_some(expected);
                    let line = Candidate {
                        origin: points[a].1,
                        axis,
                        squared_limit: limit_squared,
                        to_beat,
                    };
                    let counted = coordinates.count_more_than(&line);
                    assert_eq!(counted, wins, "line {a}-{b}, limit {limit}, to beat {to_beat:?}");
                    let portable = coordinates.count_more_than_portable(&line);
                    assert_eq!(portable, wins, "without AVX2: line {a}-{b}, limit {limit}");
                    // In the order of another line's misses first, and of this line's own.
                    for other in [(3, 1500), (a, b)] {
                        let mut reordered = coordinates.clone();
                        let d = sub(points[other.1].1, points[other.0].1);
                        let other = Candidate {
                            origin: points[other.0].1,
                            axis: scale(d, 1.0 / norm(d)),
                            ..line
                        };
                        reordered.put_misses_first(&other);
                        assert_ne!(reordered.x, coordinates.x, "the points were reordered");
                        let counted = reordered.count_more_than(&line);
                        assert_eq!(counted, wins, "reordered: line {a}-{b}, limit {limit}");
                    }
                }
                assert!(expected > 0);
            }
        }
    }

    /// The search's line is the one counting every candidate to its end would choose: the
    /// first with the most points within the inlier distance, if it has `min_hits`; on events
    /// of one track, two tracks and noise alone, for many seeds.
    #[test]
    fn the_ransac_line_is_the_first_with_the_most_points() {
        let mut noise = Rng(99);
        let mut jitter = |scale: f64| (noise.below(1000) as f64 / 1000.0 - 0.5) * scale;
        let mut one_track: Vec<V3> = (0..200)
            .map(|i| [i as f64 * 3.0 + jitter(6.0), -(i as f64) * 4.0 + jitter(6.0), jitter(6.0)])
            .collect();
        one_track.extend((0..20).map(|_| [jitter(800.0), jitter(800.0), jitter(300.0)]));
        let mut two_tracks = one_track.clone();
        two_tracks
            .extend((0..120).map(|i| [300.0 + jitter(5.0), i as f64 * 5.0, 20.0 + jitter(5.0)]));
        let noise_only: Vec<V3> =
            (0..60).map(|_| [jitter(900.0), jitter(900.0), jitter(900.0)]).collect();
        let config = TrackConfig::default();
        let inlier_squared = squared_limit(config.inlier_mm);
        for event in [&one_track, &two_tracks, &noise_only] {
            let points: Vec<(usize, V3)> = event.iter().copied().enumerate().collect();
            let coordinates = Coordinates::of(&points);
            for seed in 0..40u64 {
                let found = ransac_line(
                    &config,
                    &points,
                    &coordinates,
                    inlier_squared,
                    &mut Rng(seed * 2 + 1),
                );
                // every candidate counted to its end
                let mut rng = Rng(seed * 2 + 1);
                let mut best: Option<(usize, V3, V3)> = None;
                for _ in 0..config.ransac_trials {
                    let (a, b) = (rng.below(points.len()), rng.below(points.len()));
                    let d = sub(points[b].1, points[a].1);
                    if a == b || norm(d) < config.inlier_mm {
                        continue;
                    }
                    let axis = scale(d, 1.0 / norm(d));
                    let count = points
                        .iter()
                        .filter(|(_, p)| distance(*p, points[a].1, axis) <= config.inlier_mm)
                        .count();
                    if best.is_none_or(|(c, _, _)| count > c) {
                        best = Some((count, points[a].1, axis));
                    }
                }
                let expected = best
                    .filter(|(count, _, _)| *count >= config.min_hits)
                    .map(|(_, origin, axis)| (origin, axis));
                assert_eq!(found, expected, "seed {seed}, {} points", points.len());
                if !std::ptr::eq(event, &noise_only) {
                    assert!(found.is_some(), "seed {seed}: a track of 200 points is found");
                }
            }
        }
    }
}

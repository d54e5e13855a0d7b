//! Which detector each light-readout input sees: (ADC board, input channel) → TPC, detector,
//! detector type. Three sources:
//! - [`ChannelMap::validated_2x2`]: the 2x2's visually validated map, ndlar_flow's
//!   `light_module_desc-5.0.0.yaml` (2024-09-20; 5.0.1, named by Run-2 flow files, has the same
//!   `det_adc`/`det_chan`), kept as larmon's JSON records in `data/light-map-2x2-5.0.0.json`;
//! - [`ChannelMap::nominal_2x2`]: the regular pattern of `light_module_desc` 4.0.0, which the
//!   simulation fixtures use (it differs from 5.0.0 on 120 of 384 inputs, modules 1 and 2);
//! - a file: larmon's JSON records (`[{adc, channel, tpc, det, det_type}]`) or an ndlar_flow
//!   `light_module_desc-*.yaml` ([`ChannelMap::from_light_module_desc`]).

use serde::{Deserialize, Serialize};

/// Boards in the 2x2 light system (2 per module: ArcLight, LCM).
pub const BOARDS: usize = 8;
/// Inputs per ADC64 board.
pub const INPUTS: usize = 64;

/// Light detector technology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DetType {
    /// ArcLight (6 SiPMs per detector).
    Acl,
    /// Light Collection Module (2 SiPMs per detector).
    Lcm,
}

/// One input's detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LightChannel {
    /// ADC board index (0–7).
    pub adc: u8,
    /// Input channel (0–63).
    pub channel: u8,
    /// Global TPC index (2 · module + side of the cathode).
    pub tpc: u8,
    /// Detector 0–15 of the TPC (det / 8 = wall, det % 8 = slot bottom to top).
    pub det: u8,
    /// Detector type.
    pub det_type: DetType,
}

/// The map of every connected input.
#[derive(Clone, Debug)]
pub struct ChannelMap {
    entries: Vec<Option<LightChannel>>,
}

impl ChannelMap {
    /// The 2x2 default: board 2m is module m's ArcLight board, 2m+1 its LCM board; inputs 4–15
    /// and 20–31 see TPC 2m (walls 0 and 1), 52–63 and 36–47 TPC 2m+1 (walls 0 and 1); in each
    /// group of 12 inputs ArcLight boards give two detectors of 6 SiPMs (slots 0, 4), LCM boards
    /// six of 2 SiPMs (slots 1, 2, 3, 5, 6, 7). Inputs 0–3, 16–19, 32–35, 48–51 are unconnected.
    pub fn nominal_2x2() -> Self {
        let mut entries = vec![None; BOARDS * INPUTS];
        for adc in 0..BOARDS as u8 {
            let module = adc / 2;
            let det_type = if adc % 2 == 0 { DetType::Acl } else { DetType::Lcm };
            for (first, tpc_side, wall) in [(4u8, 0u8, 0u8), (20, 0, 1), (36, 1, 1), (52, 1, 0)] {
                for i in 0..12u8 {
                    let slot = match det_type {
                        DetType::Acl => [0, 4][usize::from(i / 6)],
                        DetType::Lcm => [1, 2, 3, 5, 6, 7][usize::from(i / 2)],
                    };
                    let channel = first + i;
                    entries[usize::from(adc) * INPUTS + usize::from(channel)] =
                        Some(LightChannel {
                            adc,
                            channel,
                            tpc: 2 * module + tpc_side,
                            det: wall * 8 + slot,
                            det_type,
                        });
                }
            }
        }
        Self { entries }
    }

    /// The 2x2's validated map (`light_module_desc` 5.0.0).
    pub fn validated_2x2() -> Self {
        let records: Vec<LightChannel> =
            serde_json::from_str(include_str!("../../data/light-map-2x2-5.0.0.json"))
                .expect("the built-in light map is valid JSON");
        Self::from_records(&records).expect("the built-in light map fits 8 boards")
    }

    /// Reads an ndlar_flow `light_module_desc` YAML: `det_adc[tpc][det]` is the board,
    /// `det_chan[tpc][det]` its inputs, `det_geom[tpc][det]` the type (0 ArcLight, 1 LCM).
    pub fn from_light_module_desc(text: &str) -> Result<Self, String> {
        use std::collections::BTreeMap;
        #[derive(Deserialize)]
        struct Desc {
            det_adc: BTreeMap<u8, BTreeMap<u8, u8>>,
            det_chan: BTreeMap<u8, BTreeMap<u8, Vec<u8>>>,
            det_geom: BTreeMap<u8, Vec<u8>>,
        }
        let desc: Desc = serde_norway::from_str(text).map_err(|e| {
            format!("not a light_module_desc YAML (det_adc, det_chan, det_geom): {e}")
        })?;
        let mut records = Vec::new();
        for (&tpc, dets) in &desc.det_chan {
            for (&det, channels) in dets {
                let adc = *desc
                    .det_adc
                    .get(&tpc)
                    .and_then(|d| d.get(&det))
                    .ok_or_else(|| format!("det_adc has no TPC {tpc} detector {det}"))?;
                let det_type = match desc.det_geom.get(&tpc).and_then(|g| g.get(usize::from(det))) {
                    Some(0) => DetType::Acl,
                    Some(1) => DetType::Lcm,
                    other => {
                        return Err(format!("det_geom of TPC {tpc} detector {det}: {other:?}"));
                    }
                };
                for &channel in channels {
                    records.push(LightChannel { adc, channel, tpc, det, det_type });
                }
            }
        }
        records.sort_by_key(|r| (r.adc, r.channel));
        if let Some(w) =
            records.windows(2).find(|w| (w[0].adc, w[0].channel) == (w[1].adc, w[1].channel))
        {
            return Err(format!(
                "adc {} channel {} is listed for two detectors",
                w[0].adc, w[0].channel
            ));
        }
        Self::from_records(&records)
    }

    /// A map from explicit records (e.g. a JSON list); inputs not listed are unconnected.
    pub fn from_records(records: &[LightChannel]) -> Result<Self, String> {
        let mut entries = vec![None; BOARDS * INPUTS];
        for r in records {
            if usize::from(r.adc) >= BOARDS || usize::from(r.channel) >= INPUTS {
                return Err(format!(
                    "adc {} channel {} is outside 8 boards × 64 inputs",
                    r.adc, r.channel
                ));
            }
            entries[usize::from(r.adc) * INPUTS + usize::from(r.channel)] = Some(*r);
        }
        Ok(Self { entries })
    }

    /// The detector of an input, if connected.
    pub fn get(&self, adc: u8, channel: u8) -> Option<LightChannel> {
        self.entries.get(usize::from(adc) * INPUTS + usize::from(channel)).copied().flatten()
    }

    /// Every connected input.
    pub fn channels(&self) -> impl Iterator<Item = LightChannel> + '_ {
        self.entries.iter().flatten().copied()
    }
}

impl Default for ChannelMap {
    fn default() -> Self {
        Self::validated_2x2()
    }
}

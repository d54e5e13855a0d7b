//! Which detector each light-readout input sees: (ADC board, input channel) → TPC, detector,
//! detector type. Configuration, with the 2x2 default built in (ndlar_flow's default
//! `light_module_desc` pattern; calibration-dq.md §4).

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
        Self::nominal_2x2()
    }
}

//! Physics formulas of the calibration (calibration-dq.md §7): ADC → mV → ke⁻, the electron
//! drift velocity in liquid argon, ticks → µs → mm.

/// Parameters of the ADC → charge conversion of one channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChannelCalibration {
    /// Reference voltage, mV.
    pub vref_mv: f64,
    /// Common-mode voltage, mV.
    pub vcm_mv: f64,
    /// Pedestal, mV.
    pub pedestal_mv: f64,
}

/// ADC counts of the LArPix v2 8-bit ADC.
pub const ADC_COUNTS: f64 = 256.0;

impl ChannelCalibration {
    /// Charge above pedestal in mV: `adc/256·(vref − vcm) + vcm − pedestal` (F2).
    #[inline]
    pub fn q_mv(&self, adc: u8) -> f64 {
        f64::from(adc) / ADC_COUNTS * (self.vref_mv - self.vcm_mv) + self.vcm_mv - self.pedestal_mv
    }

    /// Charge in ke⁻ for a front-end gain in mV/ke⁻ (F3).
    #[inline]
    pub fn q_ke(&self, adc: u8, gain_mv_per_ke: f64) -> f64 {
        self.q_mv(adc) / gain_mv_per_ke
    }

    /// The digitisation this conversion inverts (larnd-sim, F4): charge in ke⁻ → ADC counts.
    pub fn adc_of(&self, q_ke: f64, gain_mv_per_ke: f64) -> u8 {
        let adc = ((q_ke * gain_mv_per_ke + self.pedestal_mv - self.vcm_mv) * ADC_COUNTS
            / (self.vref_mv - self.vcm_mv))
            .round();
        adc.clamp(0.0, 255.0) as u8
    }
}

/// Electron mobility in LAr, cm²/V/s, BNL parameterisation (F15), E in kV/cm, T in K.
pub fn electron_mobility(e_field_kv_cm: f64, temperature_k: f64) -> f64 {
    let (a0, a1, a2, a3, a4, a5) = (551.6, 7158.3, 4440.43, 4.29, 43.63, 0.2053);
    let e = e_field_kv_cm;
    let num = a0 + a1 * e + a2 * e.powf(1.5) + a3 * e.powf(2.5);
    let den = 1.0 + (a1 / a0) * e + a4 * e * e + a5 * e * e * e;
    num / den * (temperature_k / 89.0).powf(-1.5)
}

/// Drift velocity in mm/µs: `v = µ·E` with E in V/cm (µ in cm²/V/s gives cm/s).
pub fn drift_velocity_mm_per_us(e_field_kv_cm: f64, temperature_k: f64) -> f64 {
    let cm_per_s = electron_mobility(e_field_kv_cm, temperature_k) * e_field_kv_cm * 1000.0;
    cm_per_s * 10.0 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bnl_drift_velocity_at_2x2_conditions() {
        // calibration-dq.md §1.9: 1.5965 mm/µs at 0.5 kV/cm, 87.17 K (mu = 319.3 cm²/V/s)
        let v = drift_velocity_mm_per_us(0.5, 87.17);
        assert!((v - 1.5965).abs() < 5e-4, "{v}");
        assert!((electron_mobility(0.5, 87.17) - 319.3).abs() < 0.1);
    }

    #[test]
    fn charge_conversion_inverts_the_digitisation_for_every_adc_value() {
        let ch = ChannelCalibration { vref_mv: 1568.0, vcm_mv: 478.1, pedestal_mv: 583.217 };
        for adc in 0..=255u8 {
            assert_eq!(ch.adc_of(ch.q_ke(adc, 4.522), 4.522), adc);
        }
        // the default channel: 580 mV pedestal sits at ADC 23.9
        let default = ChannelCalibration { pedestal_mv: 580.0, ..ch };
        assert!(default.q_mv(24).abs() < 4.3);
    }
}

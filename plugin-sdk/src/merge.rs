//! Merging plugin states: the one signature every mergeable part of a state has, and the rules
//! `#[derive(Merge)]` applies field by field. Merging two states gives what one instance would
//! hold after seeing both parts of the data — the files of a run, or shards on many nodes.
//!
//! - numbers add;
//! - [`Hist1D`], [`Hist2D`] (same binning, else an error), [`TimeSeries`], [`TimeSpan`] and
//!   [`ChannelStats`] and [`ChannelCounts`] merge bin by bin;
//! - `Vec` and arrays merge element by element (a longer `Vec` in the other part adds its extra
//!   elements), `Option` merges the values when both have one, maps merge key by key (a key
//!   only the other part has is inserted);
//! - field attributes choose another rule: `#[merge(extend)]` appends the other part's items,
//!   `#[merge(max)]` / `#[merge(min)]` keep the larger / smaller value, `#[merge(later)]` takes
//!   the later part's `Option` when it has one (state that carries on from batch to batch),
//!   `#[merge(with = path)]` calls your function, `#[merge(skip)]` and `#[serde(skip)]` leave
//!   the field alone.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use crate::channels::{ChannelCounts, ChannelStats};
use crate::hist::{Hist1D, Hist2D, TimeSeries, TimeSpan};

/// A part of a plugin's state that another part of the same kind can be added to. Derive it
/// (`#[derive(Merge)]`) on the plugin's state; implement it by hand only for a rule the field
/// attributes do not give.
pub trait Merge {
    /// Adds `other` — the state of a later part of the data — to this one.
    fn merge(&mut self, other: Self) -> Result<(), String>;
}

macro_rules! numbers_add {
    ($($t:ty),*) => {$(
        impl Merge for $t {
            fn merge(&mut self, other: Self) -> Result<(), String> {
                *self += other;
                Ok(())
            }
        }
    )*};
}
numbers_add!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64);

impl Merge for Hist1D {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        Hist1D::merge(self, &other)
    }
}

impl Merge for Hist2D {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        Hist2D::merge(self, &other)
    }
}

impl Merge for TimeSeries {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        TimeSeries::merge(self, &other);
        Ok(())
    }
}

impl Merge for TimeSpan {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        TimeSpan::merge(self, &other);
        Ok(())
    }
}

impl Merge for ChannelStats {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        ChannelStats::merge(self, &other);
        Ok(())
    }
}

impl Merge for ChannelCounts {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        ChannelCounts::merge(self, &other);
        Ok(())
    }
}

impl<T: Merge> Merge for Vec<T> {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        let mut other = other.into_iter();
        for (i, mine) in self.iter_mut().enumerate() {
            match other.next() {
                Some(theirs) => mine.merge(theirs).map_err(|e| format!("[{i}]: {e}"))?,
                None => return Ok(()),
            }
        }
        self.extend(other);
        Ok(())
    }
}

impl<T: Merge, const N: usize> Merge for [T; N] {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        for (i, (mine, theirs)) in self.iter_mut().zip(other).enumerate() {
            mine.merge(theirs).map_err(|e| format!("[{i}]: {e}"))?;
        }
        Ok(())
    }
}

impl<T: Merge> Merge for Option<T> {
    fn merge(&mut self, other: Self) -> Result<(), String> {
        match (self.as_mut(), other) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, theirs) => {
                *self = theirs;
                Ok(())
            }
            (Some(_), None) => Ok(()),
        }
    }
}

/// Maps merge key by key; a key only the other part has is inserted.
macro_rules! maps_merge_by_key {
    ($($map:ident<K: $($bound:path),+>),*) => {$(
        impl<K: $($bound +)+, V: Merge> Merge for $map<K, V> {
            fn merge(&mut self, other: Self) -> Result<(), String> {
                for (key, theirs) in other {
                    match self.get_mut(&key) {
                        Some(mine) => mine.merge(theirs)?,
                        None => {
                            self.insert(key, theirs);
                        }
                    }
                }
                Ok(())
            }
        }
    )*};
}
maps_merge_by_key!(BTreeMap<K: Ord>, HashMap<K: Hash, Eq>);

/// `#[merge(extend)]`: the other part's items appended (or, for a map, inserted).
pub fn extend<C: Extend<I> + IntoIterator<Item = I>, I>(
    mine: &mut C,
    theirs: C,
) -> Result<(), String> {
    mine.extend(theirs);
    Ok(())
}

/// `#[merge(max)]`: the larger value.
pub fn max<T: PartialOrd>(mine: &mut T, theirs: T) -> Result<(), String> {
    if theirs > *mine {
        *mine = theirs;
    }
    Ok(())
}

/// `#[merge(min)]`: the smaller value.
pub fn min<T: PartialOrd>(mine: &mut T, theirs: T) -> Result<(), String> {
    if theirs < *mine {
        *mine = theirs;
    }
    Ok(())
}

/// `#[merge(later)]`: the later part's value when it has one (state carried from batch to
/// batch, such as the last trigger time).
pub fn later<T>(mine: &mut Option<T>, theirs: Option<T>) -> Result<(), String> {
    if theirs.is_some() {
        *mine = theirs;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(larmon_plugin_sdk_derive::Merge, Default, Debug, PartialEq)]
    #[allow(dead_code)]
    struct State {
        packets: u64,
        charge: Vec<f64>,
        per_tpc: BTreeMap<u8, u32>,
        #[merge(extend)]
        events: Vec<(u64, f64)>,
        #[merge(max)]
        largest: f64,
        #[merge(later)]
        last_trigger: Option<u64>,
        #[merge(skip)]
        scratch: u32,
    }

    #[test]
    fn derived_merge_applies_each_fields_rule() {
        let mut a = State {
            packets: 3,
            charge: vec![1.0, 2.0],
            per_tpc: BTreeMap::from([(1, 5)]),
            events: vec![(1, 0.5)],
            largest: 7.0,
            last_trigger: Some(10),
            scratch: 1,
        };
        let b = State {
            packets: 4,
            charge: vec![10.0, 20.0, 30.0],
            per_tpc: BTreeMap::from([(1, 1), (2, 2)]),
            events: vec![(2, 1.5)],
            largest: 3.0,
            last_trigger: None,
            scratch: 9,
        };
        a.merge(b).unwrap();
        assert_eq!(
            a,
            State {
                packets: 7,
                charge: vec![11.0, 22.0, 30.0],
                per_tpc: BTreeMap::from([(1, 6), (2, 2)]),
                events: vec![(1, 0.5), (2, 1.5)],
                largest: 7.0,
                last_trigger: Some(10),
                scratch: 1,
            }
        );
        a.merge(State { last_trigger: Some(12), largest: 8.0, ..State::default() }).unwrap();
        assert_eq!((a.last_trigger, a.largest), (Some(12), 8.0));
    }

    #[test]
    fn a_failed_field_merge_names_the_field() {
        #[derive(larmon_plugin_sdk_derive::Merge)]
        struct Hists {
            per_tpc: Vec<Hist1D>,
        }
        let mut a = Hists { per_tpc: vec![Hist1D::new(10, 0.0, 1.0)] };
        let b = Hists { per_tpc: vec![Hist1D::new(20, 0.0, 1.0)] };
        let error = a.merge(b).unwrap_err();
        assert!(error.starts_with("per_tpc: [0]: "), "{error}");
    }
}

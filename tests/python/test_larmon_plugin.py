"""Unit tests of the Python plugin SDK (plugin-sdk/python/larmon_plugin.py) outside the sandbox:
accumulators, figures as the host reads them, settings, snapshots and merge rules. Run by
host/cli/tests/python_plugin.rs (`python3 -m unittest`); the SDK inside a component is tested
there too."""

import json
import math
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../plugin-sdk/python"))
import larmon_plugin as L  # noqa: E402


class State(L.Plugin):
    name = "state-test"
    consumes = {"hits": ["q_ke"]}
    settings = {"threshold": 2.5, "label": "x"}
    merge_rules = {"events": "extend", "largest": "max", "last_trigger": "later",
                   "scratch": "skip"}

    def __init__(self, settings):
        self.n = 0
        self.charge = L.Hist1D(4, 0.0, 4.0)
        self.rate = L.TimeSeries()
        self.per_tile = {}
        self.events = []
        self.largest = 0.0
        self.last_trigger = None
        self.scratch = 0

    def hits(self, batch):
        pass


class Accumulators(unittest.TestCase):
    def test_hist1d_bins_underflow_overflow_and_nan(self):
        h = L.Hist1D(4, 0.0, 4.0)
        for x in [0.0, 1.5, 3.999, 4.0, -0.1, float("nan")]:
            h.fill(x)
        self.assertEqual(h.counts, [1.0, 1.0, 0.0, 1.0])
        self.assertEqual((h.underflow, h.overflow), (1.0, 2.0))
        other = L.Hist1D(5, 0.0, 4.0)
        with self.assertRaises(ValueError):
            h.merge(other)

    def test_rate_points_drop_to_zero_in_empty_seconds(self):
        series = L.TimeSeries()
        for t in [10, 10, 11, 14]:
            series.fill(t)
        self.assertEqual(L._rate_points(series),
                         [[10.5, 2.0], [11.5, 1.0], [12.5, 0.0], [13.5, 0.0], [14.5, 1.0]])
        self.assertEqual(series.fraction_of(series), [(10, 1.0), (11, 1.0), (14, 1.0)])


class Figures(unittest.TestCase):
    def test_a_plot_is_the_typed_figure_json_the_host_reads(self):
        h = L.Hist1D(2, 0.0, 2.0)
        h.fill(0.5)
        report = L.Report().plot("q", "Charge", L.Plot("Charge", "q [ke-]", "hits").hist(h, "all")
                                 .over_time([(5, 0.5), (6, 0.25), (9, 1.0)], "f").log_y())
        name, title, data = report.figures[0]
        figure = json.loads(data)["larmon_figure_v1"]
        self.assertEqual((name, title, figure["kind"]), ("q", "Charge", "plot"))
        plot = figure["plot"]
        self.assertEqual(plot["series"][0], ["all", {"Hist": {"lo": 0.0, "hi": 2.0,
                         "counts": [1.0, 0.0], "underflow": 0.0, "overflow": 0.0}}])
        self.assertEqual(plot["series"][1][1]["Segments"],
                         [[[5.5, 0.5], [6.5, 0.25]], [[9.5, 1.0]]])
        self.assertTrue(plot["log_y"] and plot["time_x"])

    def test_checks_take_only_the_three_statuses(self):
        with self.assertRaises(ValueError):
            L.Report().check("x", "bad", "message")
        report = L.Report().check_max("rate", 5.0, 1.0, 10.0, "Hz")
        self.assertEqual(report.checks[0][1], L.WARNING)


class Settings(unittest.TestCase):
    def test_missing_keys_take_defaults_and_bad_ones_are_named(self):
        s = L._settings_of(State, '{"threshold": 3}')
        self.assertEqual((s.threshold, s.label), (3.0, "x"))
        with self.assertRaisesRegex(ValueError, "unknown field `treshold`"):
            L._settings_of(State, '{"treshold": 3}')
        with self.assertRaisesRegex(ValueError, "`label` must be str"):
            L._settings_of(State, '{"label": 3}')


class Merging(unittest.TestCase):
    def test_snapshots_round_trip_and_merge_by_the_rules(self):
        a, b = State(None), State(None)
        a.n, b.n = 2, 3
        a.charge.fill(1.0)
        b.charge.fill(1.0)
        b.charge.fill(3.0)
        a.rate.fill(100)
        b.rate.fill(100)
        b.rate.fill(101)
        a.per_tile, b.per_tile = {7: 1.0, (1, 2): 1.0}, {7: 2.0, 8: 1.0, (1, 2): 1.0}
        a.events, b.events = [(1, 0.5)], [(2, 1.5), (3, 2.5)]
        a.largest, b.largest = 9.0, 4.0
        a.last_trigger, b.last_trigger = 50, None
        a.scratch, b.scratch = 1, 99
        b.largest = float("inf")
        snapshot = json.dumps(L._encode(vars(b)), allow_nan=False)
        restored = State.__new__(State)
        restored.__dict__.update(L._decode(json.loads(snapshot)))
        a.merge(restored)
        self.assertEqual(a.n, 5)
        self.assertEqual(a.charge.counts, [0.0, 2.0, 0.0, 1.0])
        self.assertEqual(a.rate.bins, {100: 2.0, 101: 1.0})
        self.assertEqual(a.per_tile, {7: 3.0, 8: 1.0, (1, 2): 2.0})
        self.assertEqual(a.events, [(1, 0.5), (2, 1.5), (3, 2.5)])
        self.assertTrue(math.isinf(a.largest))
        self.assertEqual((a.last_trigger, a.scratch), (50, 1))

    def test_lists_merge_element_by_element_keeping_extra_items(self):
        self.assertEqual(L._merge_values([1.0, 2.0], [10.0, 20.0, 30.0], "x"),
                         [11.0, 22.0, 30.0])
        with self.assertRaisesRegex(ValueError, "write the plugin's own"):
            L._merge_values("a", "b", "label")


if __name__ == "__main__":
    unittest.main()

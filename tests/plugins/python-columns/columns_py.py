"""columns-py: a test plugin (host/cli/tests/python_plugin.rs). It sums every column of the
types the streams carry — nullable and non-null integers, f32, f64 and lists of i16 — as the
Python SDK reads them from the host's Arrow IPC, so the test can compare with the same sums
computed by arrow-rs; its state goes through snapshot and merge when a run has several files."""

from larmon_plugin import Plugin, Report

HITS = ["event_id", "tile", "tpc", "ts_ticks", "unix_time", "q_ke", "x_mm", "t0_ticks"]
WAVEFORMS = ["event", "channel", "baseline", "peak_sample", "samples"]


class Columns(Plugin):
    name = "columns-py"
    description = "Sums of columns, to test the Python SDK's Arrow reader"
    consumes = {"hits": HITS, "light_waveforms": WAVEFORMS}

    def __init__(self, settings):
        self.sums = {}      # "stream.column" -> sum of the values present
        self.nulls = {}     # "stream.column" -> values missing
        self.rows = {"hits": 0, "light_waveforms": 0}
        self.sample_count = 0

    def _add(self, stream, batch, columns):
        self.rows[stream] += len(batch)
        for column in columns:
            key = f"{stream}.{column}"
            total, missing = 0.0, 0
            for value in batch[column]:
                if value is None:
                    missing += 1
                elif column == "samples":
                    total += sum(value)
                    self.sample_count += len(value)
                else:
                    total += value
            self.sums[key] = self.sums.get(key, 0.0) + total
            self.nulls[key] = self.nulls.get(key, 0) + missing

    def hits(self, batch):
        self._add("hits", batch, HITS)

    def light_waveforms(self, batch):
        self._add("light_waveforms", batch, WAVEFORMS)

    def report(self):
        report = Report()
        for stream, rows in sorted(self.rows.items()):
            report.metric(f"{stream}.rows", rows)
        for key in sorted(self.sums):
            report.metric(f"{key}.sum", self.sums[key])
            report.metric(f"{key}.nulls", self.nulls[key])
        return report.metric("light_waveforms.samples.count", self.sample_count)

"""packet-rate-py: the bundled packet-rate plugin in Python (the example of
docs/writing-a-plugin.md): packet rate vs time by type, each type's fraction vs time, the
parity-error fraction of LArPix packets (types 0-3) with a check. Its metrics equal the Rust
plugin's (tested by host/cli/tests/python_plugin.rs)."""

from larmon_plugin import Plugin, Report, TimeSeries, Plot, Table, OK, WARNING, ERROR

TYPE_NAMES = ["data", "test", "config write", "config read", "timestamp", "message", "sync",
              "trigger"]


class PacketRate(Plugin):
    name = "packet-rate-py"
    description = "Packet rate vs time by type; parity-error fraction (Python)"
    help = ("Packet rate vs time per packet type (log scale; \"all\" dashed black), each type's "
            "fraction of all packets vs time and the parity-error fraction of LArPix packets "
            "(types 0-3) vs time. **Bad:** data rate dropping to zero (a PACMAN or tile "
            "stopped), parity errors above `parity_warn_fraction` (warning) or "
            "`parity_error_fraction` (error): a noisy link.")
    consumes = {"packets": ["packet_type", "valid_parity", "unix_time"]}
    settings = {"parity_warn_fraction": 0.002, "parity_error_fraction": 0.01}

    def __init__(self, settings):
        self.by_type = [TimeSeries() for _ in TYPE_NAMES]   # rows per Unix second, per type
        self.larpix_packets = 0                              # types 0-3
        self.parity_errors = 0
        self.larpix_per_second = TimeSeries()
        self.parity_errors_per_second = TimeSeries()

    def packets(self, batch):
        by_type = [s.bins for s in self.by_type]            # dicts: the loop's fast path
        larpix = self.larpix_per_second.bins
        bad = self.parity_errors_per_second.bins
        for kind, valid, t in zip(batch["packet_type"], batch["valid_parity"], batch["unix_time"]):
            if t is not None and kind < 8:
                bins = by_type[kind]
                bins[t] = bins.get(t, 0.0) + 1.0
            if kind <= 3:
                self.larpix_packets += 1
                if t is not None:
                    larpix[t] = larpix.get(t, 0.0) + 1.0
                if not valid:
                    self.parity_errors += 1
                    if t is not None:
                        bad[t] = bad.get(t, 0.0) + 1.0

    def report(self):
        total = TimeSeries()
        for s in self.by_type:
            total.merge(s)
        rate = Plot("Packet rate by type", "", "rate [Hz]").log_y().total_rate(total, "all")
        fractions_vs_time = Plot("Packet type fractions", "", "fraction of packets").log_y()
        for name, s in zip(TYPE_NAMES, self.by_type):
            if not s.is_empty():
                rate.rate(s, name)
                fractions_vs_time.over_time(s.fraction_of(total), name)
        n, bad = self.larpix_packets, self.parity_errors
        parity = Plot("Parity-error fraction of LArPix packets", "", "failing / all (types 0–3)")
        parity.over_time(self.parity_errors_per_second.fraction_of(self.larpix_per_second), "")
        parity.note(f"{bad} of {n} packets fail parity")
        counts = [s.total() for s in self.by_type]
        rows = [[k, TYPE_NAMES[k], f"{c:.0f}", f"{100 * c / max(sum(counts), 1):.4f} %"]
                for k, c in enumerate(counts) if c > 0]
        fraction = bad / n if n else 0.0
        error = (fraction * (1 - fraction) / n) ** 0.5 if n else 0.0
        warn, fail = self.settings.parity_warn_fraction, self.settings.parity_error_fraction
        status = ERROR if fraction >= fail else WARNING if fraction >= warn else OK
        return (Report()
                .plot("rate", "Packet rate by type", rate)
                .plot("types", "Packet type fractions",
                      Table("Packet types", ["type", "name", "rows", "fraction"], rows))
                .plot("type_fractions", "Packet type fractions vs time", fractions_vs_time)
                .plot("parity_vs_time", "Parity-error fraction vs time", parity)
                .metric("parity_error_fraction", fraction, error)
                .metric("parity_errors", bad, unit="packets")
                .metric("larpix_packets", n, unit="packets")
                .check("parity_error_fraction", status,
                       f"{bad} of {n} LArPix packets fail parity ({100 * fraction:.3f} %; "
                       f"warn at {100 * warn:.2f} %, error at {100 * fail:.2f} %)"))

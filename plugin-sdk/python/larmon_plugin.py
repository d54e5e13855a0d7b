"""The larmon plugin SDK for Python: write a plot plugin as one class, like larpix-monitor's plots.

A plugin is a subclass of `Plugin` with a method per stream it reads (`packets`, `hits`,
`events`, `tracks`, ... — the names of docs/writing-a-plugin.md's streams), each given a `Batch`
(column name -> values), and a `report` method that returns a `Report`:

    from larmon_plugin import Plugin, Report, TimeSeries, Plot

    class HitRate(Plugin):
        name = "hit-rate"
        description = "Hits per second"
        help = "Hits per second. **Bad:** a drop to zero."
        consumes = {"hits": ["unix_time"]}
        settings = {"warn_below_hz": 10.0}        # [plugins.hit-rate] keys and their defaults

        def __init__(self, settings):
            self.rate = TimeSeries()                # state: merged across files and nodes

        def hits(self, batch):
            for t in batch["unix_time"]:
                self.rate.fill(t)

        def report(self):
            return Report().plot("rate", "Hit rate", Plot("Hit rate", "", "rate [Hz]").rate(self.rate, "hits"))

`larmon plugin build` turns the file into a WebAssembly component of the same world as the Rust
plugins (componentize-py); the host runs it in the same sandbox with the same limits.

State: every attribute of the instance except `settings` is its state. The host snapshots it
(JSON; floats round-trip exactly) and merges the snapshots of several files or nodes with
`merge`, by the rules of the Rust SDK's #[derive(Merge)]: numbers add, lists element by element,
dicts key by key, `Hist1D`, `Hist2D` and `TimeSeries` bin by bin; `merge_rules = {"events":
"extend", "largest": "max"}` chooses another rule per attribute (extend, max, min, later,
skip). Override `merge(self, other)` for anything else.

Figures are data (`Plot`, `Table`, `ValueMap`): the host draws them in the common style, the same
as the Rust SDK's, and can draw a reference run over them.
"""

import json
import math
import struct
import sys
import traceback

__all__ = [
    "Plugin", "Batch", "Hist1D", "Hist2D", "TimeSeries", "Plot", "Table", "ValueMap", "Report",
    "OK", "WARNING", "ERROR", "log",
]

OK, WARNING, ERROR = "ok", "warning", "error"


# ---------------------------------------------------------------------------------------------
# Arrow IPC: the host sends each batch as an Arrow IPC stream (schema + record batch). There is
# no pyarrow inside the sandbox, so this reads the format itself: the flatbuffer metadata of
# https://arrow.apache.org/docs/format/Columnar.html#serialization-and-interprocess-communication-ipc
# and the column buffers as memoryviews (no copy).
# ---------------------------------------------------------------------------------------------


class _Table:
    """A flatbuffer table: fields by vtable slot."""

    __slots__ = ("buf", "pos", "vtable", "vlen")

    def __init__(self, buf, pos):
        self.buf = buf
        self.pos = pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vlen = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, slot):
        at = 4 + 2 * slot
        if at >= self.vlen:
            return 0
        return struct.unpack_from("<H", self.buf, self.vtable + at)[0]

    def scalar(self, slot, fmt, default=0):
        off = self._field(slot)
        return struct.unpack_from(fmt, self.buf, self.pos + off)[0] if off else default

    def _indirect(self, slot):
        off = self._field(slot)
        if not off:
            return None
        at = self.pos + off
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, slot):
        at = self._indirect(slot)
        return None if at is None else _Table(self.buf, at)

    def string(self, slot):
        at = self._indirect(slot)
        if at is None:
            return ""
        n = struct.unpack_from("<I", self.buf, at)[0]
        return bytes(self.buf[at + 4:at + 4 + n]).decode("utf-8")

    def tables(self, slot):
        at = self._indirect(slot)
        if at is None:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        items = []
        for i in range(n):
            p = at + 4 + 4 * i
            items.append(_Table(self.buf, p + struct.unpack_from("<I", self.buf, p)[0]))
        return items

    def structs(self, slot, fmt):
        """A vector of structs of `fmt` (e.g. two int64)."""
        at = self._indirect(slot)
        if at is None:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        size = struct.calcsize(fmt)
        return [struct.unpack_from(fmt, self.buf, at + 4 + size * i) for i in range(n)]


# Arrow's Type union tags and the struct format of the primitive ones.
_INT, _FLOAT, _UTF8, _BOOL, _LIST = 2, 3, 5, 6, 12
_INT_FORMATS = {(8, True): "b", (8, False): "B", (16, True): "h", (16, False): "H",
                (32, True): "i", (32, False): "I", (64, True): "q", (64, False): "Q"}
_FLOAT_FORMATS = {0: "e", 1: "f", 2: "d"}


class _Field:
    __slots__ = ("name", "kind", "children")

    def __init__(self, table):
        self.name = table.string(0)
        type_tag = table.scalar(2, "<B")
        type_table = table.table(3)
        if type_tag == _INT:
            key = (type_table.scalar(0, "<i"), bool(type_table.scalar(1, "<B")))
            self.kind = _INT_FORMATS.get(key) or _unsupported(self.name, f"Int{key}")
        elif type_tag == _FLOAT:
            self.kind = _FLOAT_FORMATS[type_table.scalar(0, "<h")]
        elif type_tag in (_UTF8, _BOOL, _LIST):
            self.kind = {_UTF8: "utf8", _BOOL: "bool", _LIST: "list"}[type_tag]
        else:
            _unsupported(self.name, f"Arrow type tag {type_tag}")
        self.children = [_Field(child) for child in table.tables(5)]


def _unsupported(name, what):
    raise ValueError(f"column {name!r}: {what} is not supported by the Python SDK")


def _messages(data):
    """(flatbuffer Message table, body memoryview) of each message of an IPC stream."""
    view = memoryview(data)
    pos = 0
    while pos + 8 <= len(view):
        length = struct.unpack_from("<i", view, pos)[0]
        pos += 4
        if length == -1:  # continuation marker, then the length
            length = struct.unpack_from("<i", view, pos)[0]
            pos += 4
        if length == 0:
            return
        meta = view[pos:pos + length]
        pos += length
        message = _Table(meta, struct.unpack_from("<I", meta, 0)[0])
        body_length = message.scalar(3, "<q")
        yield message, view[pos:pos + body_length]
        pos += body_length


def _bits(view, offset, n):
    return [bool(view[(offset + i) >> 3] >> ((offset + i) & 7) & 1) for i in range(n)]


def _column(field, nodes, buffers, body):
    """The values of one column (and its children's buffers consumed)."""
    length, null_count = next(nodes)
    validity = next(buffers)

    def buffer(spec):
        offset, size = spec
        return body[offset:offset + size]

    if field.kind == "list":
        offsets = buffer(next(buffers)).cast("i")[:length + 1]
        child = _column(field.children[0], nodes, buffers, body)
        values = [child[offsets[i]:offsets[i + 1]] for i in range(length)]
    elif field.kind == "utf8":
        offsets = buffer(next(buffers)).cast("i")[:length + 1]
        data = bytes(buffer(next(buffers)))
        values = [data[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(length)]
    elif field.kind == "bool":
        values = _bits(buffer(next(buffers)), 0, length)
    else:
        raw = buffer(next(buffers))
        size = struct.calcsize(field.kind)
        values = raw[:length * size].cast(field.kind)
    if null_count and validity[1]:
        valid = _bits(buffer(validity), 0, length)
        values = [v if ok else None for v, ok in zip(values, valid)]
    return values


def read_ipc(data):
    """The record batches of an Arrow IPC stream, each a `Batch`."""
    fields = None
    batches = []
    for message, body in _messages(data):
        header_type = message.scalar(1, "<B")
        header = message.table(2)
        if header_type == 1:  # Schema
            fields = [_Field(f) for f in header.tables(1)]
        elif header_type == 3:  # RecordBatch
            if fields is None:
                raise ValueError("record batch before the schema")
            if header.table(3) is not None:
                raise ValueError("compressed IPC buffers are not supported")
            rows = header.scalar(0, "<q")
            nodes = iter(header.structs(1, "<qq"))
            buffers = iter(header.structs(2, "<qq"))
            columns = {f.name: _column(f, nodes, buffers, body) for f in fields}
            batches.append(Batch(columns, rows))
    return batches


class Batch(dict):
    """One record batch: column name -> values (a memoryview of numbers, or a list with None for
    missing values of a nullable column, lists for list columns). `len(batch)` is its rows."""

    def __init__(self, columns, rows):
        super().__init__(columns)
        self.rows = rows

    def __len__(self):
        return self.rows

    def __missing__(self, name):
        raise KeyError(f"no column {name!r} in this batch (it has {', '.join(self.keys())}): "
                       "add it to the plugin's `consumes`")


# ---------------------------------------------------------------------------------------------
# Mergeable accumulators (the same as the Rust SDK's, and serialised alike for figures).
# ---------------------------------------------------------------------------------------------


class Hist1D:
    """A weighted histogram with `bins` equal bins over [lo, hi), plus under- and overflow."""

    def __init__(self, bins, lo, hi):
        self.lo, self.hi = float(lo), float(hi)
        self.counts = [0.0] * max(int(bins), 1)
        self.underflow = 0.0
        self.overflow = 0.0

    def fill(self, x, weight=1.0):
        if x < self.lo:
            self.underflow += weight
        elif x >= self.hi or x != x:
            self.overflow += weight
        else:
            n = len(self.counts)
            self.counts[min(int((x - self.lo) / (self.hi - self.lo) * n), n - 1)] += weight

    def center(self, i):
        return self.lo + (i + 0.5) * (self.hi - self.lo) / len(self.counts)

    def total(self):
        return sum(self.counts)

    def mean(self):
        total = self.total()
        if total <= 0:
            return None
        return sum(w * self.center(i) for i, w in enumerate(self.counts)) / total

    def merge(self, other):
        if (len(self.counts), self.lo, self.hi) != (len(other.counts), other.lo, other.hi):
            raise ValueError("merging histograms with different binning")
        self.counts = [a + b for a, b in zip(self.counts, other.counts)]
        self.underflow += other.underflow
        self.overflow += other.overflow

    def _json(self):
        return {"lo": self.lo, "hi": self.hi, "counts": self.counts,
                "underflow": self.underflow, "overflow": self.overflow}


class Hist2D:
    """A weighted 2-D histogram: `x_bins` × `y_bins` equal bins, plus what falls outside."""

    def __init__(self, x_bins, x_lo, x_hi, y_bins, y_lo, y_hi):
        self.x = (max(int(x_bins), 1), float(x_lo), float(x_hi))
        self.y = (max(int(y_bins), 1), float(y_lo), float(y_hi))
        self.counts = [0.0] * (self.x[0] * self.y[0])
        self.outside = 0.0

    def fill(self, x, y, weight=1.0):
        (nx, x0, x1), (ny, y0, y1) = self.x, self.y
        if x0 <= x < x1 and y0 <= y < y1:
            ix = min(int((x - x0) / (x1 - x0) * nx), nx - 1)
            iy = min(int((y - y0) / (y1 - y0) * ny), ny - 1)
            self.counts[iy * nx + ix] += weight
        else:
            self.outside += weight

    def merge(self, other):
        if tuple(self.x) != tuple(other.x) or tuple(self.y) != tuple(other.y):
            raise ValueError("merging 2-D histograms with different binning")
        self.counts = [a + b for a, b in zip(self.counts, other.counts)]
        self.outside += other.outside


class TimeSeries:
    """Sums of weights per time bin (a Unix second, say), for rates."""

    def __init__(self):
        self.bins = {}

    def fill(self, t, weight=1.0):
        bins = self.bins
        bins[t] = bins.get(t, 0.0) + weight

    def merge(self, other):
        for t, w in other.bins.items():
            self.bins[t] = self.bins.get(t, 0.0) + w

    def points(self):
        """(time, summed weight) in time order."""
        return sorted(self.bins.items())

    def total(self):
        return sum(self.bins.values())

    def is_empty(self):
        return not self.bins

    def fraction_of(self, all_series):
        """This series' share of `all_series` in each bin where that is positive."""
        return [(t, self.bins.get(t, 0.0) / n) for t, n in all_series.points() if n > 0]


# ---------------------------------------------------------------------------------------------
# Figures as data: the host draws them (docs/writing-a-plugin.md, "Figures as data").
# ---------------------------------------------------------------------------------------------


class Plot:
    """Histograms, lines, points and error bars on shared axes (put units in brackets)."""

    def __init__(self, title, x_label, y_label):
        self._plot = {"title": title, "labels": [x_label, y_label], "series": [],
                      "log_y": False, "x_range": None, "y_range": None, "notes": [],
                      "time_x": False, "run_start": None}

    def _add(self, name, kind, data):
        self._plot["series"].append([name, {kind: data}])
        return self

    def log_y(self):
        self._plot["log_y"] = True
        return self

    def x_range(self, lo, hi):
        self._plot["x_range"] = [float(lo), float(hi)]
        return self

    def y_range(self, lo, hi):
        self._plot["y_range"] = [float(lo), float(hi)]
        return self

    def hist(self, h, name=""):
        return self._add(name, "Hist", h._json())

    def line(self, points, name=""):
        return self._add(name, "Line", [[float(x), float(y)] for x, y in points])

    def dashed_line(self, points, name=""):
        return self._add(name, "Dashed", [[float(x), float(y)] for x, y in points])

    def points(self, points, name=""):
        return self._add(name, "Points", [[float(x), float(y)] for x, y in points])

    def error_points(self, points, name=""):
        return self._add(name, "ErrorPoints", [[float(x), float(y), float(e)] for x, y, e in points])

    def rate(self, series, name=""):
        """A rate over time from per-second sums; a second without entries is a rate of 0."""
        self._plot["time_x"] = True
        return self._add(name, "Line", _rate_points(series))

    def total_rate(self, series, name=""):
        """`rate` as a black dashed line (the total of the other rates)."""
        self._plot["time_x"] = True
        return self._add(name, "Dashed", _rate_points(series))

    def over_time(self, points, name=""):
        """A quantity over time, (Unix second, value) in time order; breaks where a second is
        missing (a fraction of nothing is undefined)."""
        self._plot["time_x"] = True
        segments, last = [], None
        for t, v in points:
            if last is None or t - last > 1:
                segments.append([])
            segments[-1].append([t + 0.5, float(v)])
            last = t
        return self._add(name, "Segments", segments)

    def note(self, text):
        self._plot["notes"].append(str(text))
        return self

    def _typed(self):
        return {"kind": "plot", "plot": self._plot}


def _rate_points(series):
    points, last = [], None
    for t, v in series.points():
        if last is not None and t > last + 1:
            points.append([last + 1.5, 0.0])
            if t > last + 2:
                points.append([t - 0.5, 0.0])
        points.append([t + 0.5, float(v)])
        last = t
    return points


class Table:
    """A table: a header row and rows of text."""

    def __init__(self, title, header, rows):
        self._table = {"kind": "table", "title": title, "header": [str(h) for h in header],
                       "rows": [[str(c) for c in row] for row in rows]}

    def _typed(self):
        return self._table


class ValueMap:
    """Values on a grid of cells (a per-channel or per-detector map, a 2-D histogram):
    `(x, y, value)` at cell centres, cells `cell` wide and high (a number or (w, h))."""

    def __init__(self, points, cell, title, x_label, y_label, value_label):
        cell = (cell, cell) if isinstance(cell, (int, float)) else cell
        self._map = {"kind": "value_map", "title": title, "x_label": x_label,
                     "y_label": y_label, "value_label": value_label,
                     "cell": [float(cell[0]), float(cell[1])],
                     "points": [[float(x), float(y), float(v)] for x, y, v in points],
                     "time_x": False, "run_start": None}

    @staticmethod
    def hist2d(h, title, x_label, y_label, z_label):
        (nx, x0, x1), (ny, y0, y1) = h.x, h.y
        wx, wy = (x1 - x0) / nx, (y1 - y0) / ny
        points = [(x0 + (ix + 0.5) * wx, y0 + (iy + 0.5) * wy, h.counts[iy * nx + ix])
                  for iy in range(ny) for ix in range(nx) if h.counts[iy * nx + ix] != 0]
        return ValueMap(points, (wx, wy), title, x_label, y_label, z_label)

    def _typed(self):
        return self._map


class Report:
    """What `report` returns: figures, metrics, checks and structured results."""

    def __init__(self):
        self.figures, self.metrics, self.checks, self.results = [], [], [], []

    def plot(self, name, title, figure):
        """A figure as data (`Plot`, `Table` or `ValueMap`), drawn by the host."""
        self.figures.append((name, title, json.dumps({"larmon_figure_v1": figure._typed()})))
        return self

    def table(self, name, title, header, rows):
        return self.plot(name, title, Table(title, header, rows))

    def metric(self, name, value, error=None, unit=""):
        self.metrics.append((name, float(value), None if error is None else float(error), unit))
        return self

    def check(self, name, status, message):
        if status not in (OK, WARNING, ERROR):
            raise ValueError(f"check {name!r}: status {status!r} is not ok, warning or error")
        self.checks.append((name, status, str(message)))
        return self

    def check_max(self, name, value, warn_above, error_above, unit=""):
        """`error` above `error_above`, `warning` above `warn_above`, else ok."""
        if not math.isfinite(value) or value > error_above:
            return self.check(name, ERROR, f"{value:.4f} {unit} > error limit {error_above} {unit}")
        if value > warn_above:
            return self.check(name, WARNING, f"{value:.4f} {unit} > warning limit {warn_above} {unit}")
        return self.check(name, OK, f"{value:.4f} {unit} ≤ {warn_above} {unit}")

    def result(self, name, value):
        """A JSON-serialisable finding, copied into report.json under `results`."""
        self.results.append((name, json.dumps(value)))
        return self


# ---------------------------------------------------------------------------------------------
# The plugin class and its state.
# ---------------------------------------------------------------------------------------------


class Settings:
    """A plugin's settings: its `settings` defaults, overridden by `[plugins.NAME]`."""

    def __init__(self, values):
        self.__dict__.update(values)

    def __repr__(self):
        return f"Settings({self.__dict__!r})"


class Plugin:
    """Subclass it once per plugin file; see the module's documentation."""

    name = ""
    version = "0.1.0"
    description = ""
    help = ""
    consumes = {}
    settings = {}

    _registered = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Plugin._registered.append(cls)

    def __init__(self, settings):
        pass

    def report(self):
        return Report()

    # How an attribute merges when not the default (the Rust SDK's #[merge(...)] attributes):
    # "extend" (append the later part's items: a list of events), "max", "min", "later" (the
    # later part's value unless None: state carried from batch to batch), "skip".
    merge_rules = {}

    def merge(self, other):
        """Adds `other` (the state of a later part of the data) to this one: every attribute
        by its `merge_rules` entry, or by default numbers add, lists element by element (extra
        items of a longer list kept), dicts key by key, histograms and series bin by bin."""
        rules = type(self).merge_rules
        for key, theirs in vars(other).items():
            rule = rules.get(key, "merge")
            if key == "settings" or rule == "skip":
                continue
            if key not in vars(self):
                setattr(self, key, theirs)
                continue
            mine = getattr(self, key)
            if rule == "extend":
                mine.update(theirs) if isinstance(mine, dict) else mine.extend(theirs)
            elif rule in ("max", "min"):
                setattr(self, key, (max if rule == "max" else min)(mine, theirs))
            elif rule == "later":
                setattr(self, key, mine if theirs is None else theirs)
            elif rule == "merge":
                setattr(self, key, _merge_values(mine, theirs, key))
            else:
                raise ValueError(f"merge_rules[{key!r}] = {rule!r}: use extend, max, min, "
                                 "later or skip")


def _merge_values(a, b, where):
    if isinstance(a, (Hist1D, Hist2D, TimeSeries)):
        a.merge(b)
        return a
    if isinstance(a, bool) or a is None:
        return a if a == b else _cannot_merge(where, a, b)
    if isinstance(a, (int, float)):
        return a + b
    if isinstance(a, list):
        merged = [_merge_values(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b))]
        return merged + a[len(b):] + b[len(a):]
    if isinstance(a, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge_values(out[k], v, f"{where}[{k!r}]") if k in out else v
        return out
    if a == b:
        return a
    return _cannot_merge(where, a, b)


def _cannot_merge(where, a, b):
    raise ValueError(f"merge: cannot add {where} ({a!r} and {b!r}); write the plugin's own "
                     "merge(self, other) for it")


# State to JSON and back: SDK objects, tuples and non-finite floats are tagged, dict keys keep
# their type (int, str, tuple).
_CLASSES = {"Hist1D": Hist1D, "Hist2D": Hist2D, "TimeSeries": TimeSeries}


def _encode(value):
    if isinstance(value, (Hist1D, Hist2D, TimeSeries)):
        return {"__larmon__": type(value).__name__, "state": _encode(vars(value))}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"state of type {type(value).__name__} cannot be snapshotted: keep numbers, "
                    "strings, lists, dicts and the SDK's histograms and series in the plugin")


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if "__larmon__" in value:
            obj = _CLASSES[value["__larmon__"]].__new__(_CLASSES[value["__larmon__"]])
            obj.__dict__.update(_decode(value["state"]))
            if isinstance(obj, Hist2D):
                obj.x, obj.y = tuple(obj.x), tuple(obj.y)
            return obj
        if "__float__" in value:
            return float(value["__float__"])
        if "__tuple__" in value:
            return tuple(_decode(v) for v in value["__tuple__"])
        return {_decode(k): _decode(v) for k, v in value["__dict__"]}
    return value


def _settings_of(cls, config_json):
    given = json.loads(config_json) if config_json.strip() else {}
    if not isinstance(given, dict):
        raise ValueError("settings: expected a table of keys")
    values = dict(cls.settings)
    for key, value in given.items():
        if key not in values:
            known = ", ".join(f"`{k}`" for k in cls.settings) or "none"
            raise ValueError(f"settings: unknown field `{key}`, expected one of {known}")
        default = values[key]
        numeric = isinstance(default, float) and isinstance(value, (int, float))
        if not numeric and type(value) is not type(default):
            raise ValueError(f"settings: `{key}` must be {type(default).__name__} like its "
                             f"default {default!r}, not {value!r}")
        values[key] = float(value) if numeric else value
    return Settings(values)


def log(message, level="info"):
    """A line in the plugin's log (shown on the run page)."""
    from wit_world.imports import host
    levels = {"debug": host.Level.DEBUG, "info": host.Level.INFO, "warn": host.Level.WARN,
              "error": host.Level.ERROR}
    host.log(levels.get(level, host.Level.INFO), str(message))


# ---------------------------------------------------------------------------------------------
# The component's exports (used by the files `larmon plugin build` generates).
# ---------------------------------------------------------------------------------------------


def _the_plugin():
    found = [c for c in Plugin._registered if c.__module__ != __name__]
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise RuntimeError(f"a plugin file defines exactly one Plugin subclass (found: {names})")
    return found[0]


def _plugin_name(cls):
    return cls.name or cls.__module__.replace("_", "-")


def check_plugin_class():
    """What `larmon plugin build` checks before it makes the component: one Plugin subclass with
    a valid name, `consumes` a dict of stream -> list of column names, `settings` a dict of
    JSON-like defaults, a method per consumed stream."""
    cls = _the_plugin()
    name = _plugin_name(cls)
    if not (name[:1].isalpha() and name == name.lower()
            and all(c.isalnum() or c == "-" for c in name)):
        raise ValueError(f"{cls.__name__}.name {name!r}: use lower-case letters, digits and dashes")
    if not isinstance(cls.consumes, dict) or not all(
            isinstance(k, str) and isinstance(v, (list, tuple)) and all(isinstance(c, str) for c in v)
            for k, v in cls.consumes.items()):
        raise ValueError(f"{cls.__name__}.consumes: a dict of stream name -> list of column names")
    for stream in cls.consumes:
        if not callable(getattr(cls, stream, None)):
            raise ValueError(f"{cls.__name__} consumes {stream!r} but has no method "
                             f"`def {stream}(self, batch)`")
    if not isinstance(cls.settings, dict):
        raise ValueError(f"{cls.__name__}.settings: a dict of key -> default value")
    for key, default in cls.settings.items():
        if not isinstance(default, (bool, int, float, str, list)):
            raise ValueError(f"{cls.__name__}.settings[{key!r}]: the default must be a number, "
                             "bool, string or list")
    return cls


def _error(context, exc):
    """An exception as the one-line-per-frame message the host shows."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in frames)
    from componentize_py_types import Err
    return Err(f"{context}: {type(exc).__name__}: {exc} (at {where})")


def info():
    from wit_world.imports import types
    cls = _the_plugin()
    return types.PluginInfo(
        name=_plugin_name(cls), version=cls.version,
        description=cls.description, help=cls.help,
        consumes=[types.StreamRequest(stream, list(columns))
                  for stream, columns in cls.consumes.items()],
        config_keys=list(cls.settings))


class Instance:
    """The WIT `instance` resource over a plugin object."""

    def __init__(self, plugin):
        self.plugin = plugin

    @classmethod
    def open(cls, config_json):
        try:
            plugin_class = _the_plugin()
            settings = _settings_of(plugin_class, config_json)
            plugin = plugin_class(settings)
            plugin.settings = settings
            return cls(plugin)
        except Exception as exc:
            raise _error("open", exc)

    def consume(self, stream, batch_ipc):
        method = getattr(self.plugin, stream, None)
        if method is None:
            return
        try:
            for batch in read_ipc(batch_ipc):
                method(batch)
        except Exception as exc:
            raise _error(stream, exc)

    def snapshot(self):
        try:
            state = {k: v for k, v in vars(self.plugin).items() if k != "settings"}
            return json.dumps(_encode(state), allow_nan=False).encode()
        except Exception as exc:
            raise _error("snapshot", exc)

    def merge(self, snapshot):
        try:
            other = type(self.plugin).__new__(type(self.plugin))
            other.__dict__.update(_decode(json.loads(snapshot)))
            self.plugin.merge(other)
        except Exception as exc:
            raise _error("merge", exc)

    def report(self):
        from wit_world.imports import types
        try:
            report = self.plugin.report()
            status = {OK: types.CheckStatus.OK, WARNING: types.CheckStatus.WARNING,
                      ERROR: types.CheckStatus.ERROR}
            return types.Report(
                figures=[types.Figure(n, t, "", d) for n, t, d in report.figures],
                metrics=[types.Metric(n, v, e, u) for n, v, e, u in report.metrics],
                checks=[types.Check(n, status[s], m) for n, s, m in report.checks],
                results=[types.NamedResult(n, j) for n, j in report.results])
        except Exception as exc:
            raise _error("report", exc)

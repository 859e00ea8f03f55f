"""What a user checks first on audio: the durations, sample rates, channels and file formats of the raw clips.

The headers come from get_data's integrity pass (:func:`audioclf.metadata.check_clips` reads each clip's
header while it probes the clip), so no file is opened a second time and no audio is decoded for this
report; it costs nothing on the 8732 clips of UrbanSound8K. It gives:

- ``audio_info.csv``: one row per clip of the dataset (filepath, fold, class, duration_s, samplerate,
  channels, frames, format, subtype: the fields of ``soundfile.info``), stored in the raw dataset beside
  metadata.csv and in the run folder;
- one figure with four panels (duration histogram with a line at the feature duration, sample-rate,
  channel and format/subtype counts): a plotly figure on the dataset's page and the task, and
  ``audio_properties.png`` in the run folder;
- a one-paragraph summary for the console, which also names the listed clips that could not be read
  (they are left out of the dataset; skipped_clips.csv has the reasons).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import metadata, plots

INFO_FILE = "audio_info.csv"  # the per-clip header table, at the root of the raw dataset and in the run folder
PNG_NAME = "audio_properties.png"
PLOT_TITLE = "Audio properties"  # ClearML title (metric) of the figure; series PLOT_SERIES
PLOT_SERIES = "duration, sample rate, channels, format"  # also the figure's title in the web UI (report_plotly)
INFO_COLUMNS = ("filepath", "fold", "class", "duration_s", "samplerate", "channels", "frames", "format", "subtype")
# A clip counts as shorter (or longer) than the feature duration only beyond this: real "4 s" slices often
# hold a few frames less (end - start rounded), which the features pad without anyone noticing.
DURATION_TOLERANCE_S = 0.01
MAX_DURATION_BINS = 40
NAMED_LEFT_OUT = 5  # unreadable clips named in the summary; the rest are counted (all are in skipped_clips.csv)


def feature_duration_s() -> float:
    """The clip length the features use (FeatureConfig.duration_s: the single source of that default).
    Imported here, not at module level: it pulls in torch, which the rest of get_data does not need."""
    from .features import FeatureConfig

    return float(FeatureConfig().duration_s)


@dataclass
class AudioStats:
    table: pd.DataFrame  # INFO_COLUMNS, one row per clip of the dataset
    reference_s: float  # the feature duration, drawn as a line on the duration histogram
    left_out: list[tuple[str, str]]  # (filepath, reason) of listed clips that could not be read

    @property
    def num_clips(self) -> int:
        return len(self.table)

    @property
    def durations(self) -> np.ndarray:
        return self.table["duration_s"].to_numpy(dtype=float)

    def counts(self) -> dict[str, dict[str, int]]:
        """Panel name -> {label: clips}: sample rates (ascending), channels (ascending), formats (most first)."""
        t = self.table
        rates = t["samplerate"].value_counts().sort_index()
        channels = t["channels"].value_counts().sort_index()
        formats = (t["format"].astype(str) + " " + t["subtype"].astype(str)).value_counts()
        return {"sample rate": {rate_label(r): int(c) for r, c in rates.items()},
                "channels": {channel_label(n): int(c) for n, c in channels.items()},
                "format / subtype": {str(k): int(c) for k, c in formats.items()}}


def rate_label(rate: int) -> str:
    """44100 -> '44.1 kHz', 8000 -> '8 kHz'."""
    return f"{rate / 1000:g} kHz"


def channel_label(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(int(channels), f"{int(channels)} ch")


def describe(kept: pd.DataFrame, audio_info: pd.DataFrame, skipped: pd.DataFrame,
             reference_s: float) -> AudioStats:
    """The stats of the clips in ``kept`` (the dataset's metadata table), from the headers the integrity pass
    read (``audio_info``, metadata.AUDIO_INFO_COLUMNS) and the clips it left out (``skipped``)."""
    info = audio_info.drop_duplicates("filepath")
    table = kept[["filepath", "fold", "class"]].merge(info, on="filepath", how="left", validate="one_to_one")
    unknown = table["samplerate"].isna()
    if unknown.any():  # a bug, not bad input: every kept clip was probed
        raise RuntimeError(f"no header was read for {int(unknown.sum())} kept clips, e.g. "
                           f"{table.loc[unknown, 'filepath'].iloc[0]}")
    table = table.astype({"samplerate": int, "channels": int, "frames": int})[list(INFO_COLUMNS)]
    left_out = [(str(p), str(r)) for p, r in zip(skipped["filepath"], skipped["reason"]) if r != metadata.UNLISTED]
    return AudioStats(table=table, reference_s=float(reference_s), left_out=left_out)


def _share(count: int, total: int) -> str:
    pct = 100.0 * count / total if total else 0.0
    return "<1 %" if 0 < pct < 0.5 else f"{pct:.0f} %"


def _shares(counts: dict[str, int], total: int, top: int) -> str:
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    shown = [f"{label} {_share(n, total)}" for label, n in items[:top]]
    rest = sum(n for _, n in items[top:])
    return ", ".join(shown + ([f"other {_share(rest, total)}"] if rest else []))


def summary(stats: AudioStats) -> str:
    """One paragraph: durations against the feature duration, sample rates, channels, formats, unreadable clips."""
    n, ref = stats.num_clips, stats.reference_s
    parts = []
    if n:
        d = stats.durations
        short = int((d < ref - DURATION_TOLERANCE_S).sum())
        long = int((d > ref + DURATION_TOLERANCE_S).sum())
        length = (f"{d.min():.2f}-{d.max():.2f} s (median {np.median(d):.2f} s, {_share(short, n)} shorter than "
                  f"{ref:g} s: padded" + (f"; {_share(long, n)} longer: trimmed" if long else "") + ")")
        counts = stats.counts()
        rates = stats.table["samplerate"]
        span = (rate_label(rates.min()) if rates.nunique() == 1
                else f"{rates.min() / 1000:g}-{rates.max() / 1000:g} kHz ({_shares(counts['sample rate'], n, 3)})")
        parts = [f"{n} clips: {length}", span, _shares(counts["channels"], n, 3),
                 _shares(counts["format / subtype"], n, 4)]
    else:
        parts = ["no readable clip"]
    text = "; ".join(parts)
    if stats.left_out:
        named = ", ".join(f"{p} ({r})" for p, r in stats.left_out[:NAMED_LEFT_OUT])
        more = len(stats.left_out) - NAMED_LEFT_OUT
        text += (f"; {len(stats.left_out)} listed clips could not be read and are left out: {named}"
                 + (f" and {more} more" if more > 0 else "") + " (reasons in skipped_clips.csv)")
    return text + "."


def duration_bins(durations: np.ndarray, reference_s: float) -> np.ndarray:
    """Bin edges from 0 to past the longest clip (and the reference), in a round width giving at most
    MAX_DURATION_BINS bins."""
    top = max(float(durations.max()) if len(durations) else 0.0, reference_s, 0.1)
    for width in (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 3600.0):
        if top / width <= MAX_DURATION_BINS:
            break
    count = max(1, int(np.ceil(top / width - 1e-9)))
    return np.arange(count + 1) * width


# Panels of the 2 x 2 figure: (x domain, y domain) in paper coordinates.
_DOMAINS = (([0.0, 0.44], [0.6, 1.0]), ([0.56, 1.0], [0.6, 1.0]), ([0.0, 0.44], [0.0, 0.36]),
            ([0.56, 1.0], [0.0, 0.36]))


def plotly_figure(stats: AudioStats) -> dict:
    """The four panels as one plotly.js figure (bar traces on four axis pairs), for Logger.report_plotly."""
    edges = duration_bins(stats.durations, stats.reference_s)
    heights, _ = np.histogram(stats.durations, bins=edges)
    panels = [("duration (s)", [round(float(x), 4) for x in (edges[:-1] + edges[1:]) / 2], heights.tolist())]
    panels += [(name, list(c), list(c.values())) for name, c in stats.counts().items()]
    data, layout = [], {"showlegend": False, "bargap": 0.05, "height": 640, "margin": {"b": 110}}
    for i, ((name, x, y), (xdom, ydom)) in enumerate(zip(panels, _DOMAINS), start=1):
        suffix = "" if i == 1 else str(i)
        trace = {"type": "bar", "name": name, "x": x, "y": [int(v) for v in y],
                 "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
        if i == 1:
            trace["width"] = float(edges[1] - edges[0])
        data.append(trace)
        layout[f"xaxis{suffix}"] = {"domain": xdom, "anchor": f"y{suffix}", "title": {"text": name},
                                    **({} if i == 1 else {"type": "category"})}
        layout[f"yaxis{suffix}"] = {"domain": ydom, "anchor": f"x{suffix}", "title": {"text": "clips"}}
    ydom = _DOMAINS[0][1]
    layout["shapes"] = [{"type": "line", "xref": "x", "yref": "paper", "x0": stats.reference_s,
                         "x1": stats.reference_s, "y0": ydom[0], "y1": ydom[1],
                         "line": {"color": "crimson", "dash": "dash", "width": 2}}]
    layout["annotations"] = [{"text": f"features: {stats.reference_s:g} s", "xref": "x", "yref": "paper",
                              "x": stats.reference_s, "y": ydom[1], "showarrow": False, "xanchor": "right",
                              "yanchor": "bottom", "font": {"color": "crimson"}}]
    return {"data": data, "layout": layout}


def report(logger, stats: AudioStats) -> None:
    """The figure on a ClearML logger (a task's, or a dataset's own page)."""
    logger.report_plotly(title=PLOT_TITLE, series=PLOT_SERIES, figure=plotly_figure(stats), iteration=0)


def save_png(stats: AudioStats, path: Path) -> Path:
    title = f"{stats.num_clips} clips" + (f" ({len(stats.left_out)} unreadable, left out)" if stats.left_out else "")
    return plots.audio_properties_png(stats.durations, duration_bins(stats.durations, stats.reference_s),
                                      stats.reference_s, stats.counts(), path, title)

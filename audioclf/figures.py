"""Plotly figures for the ClearML web UI, laid out so that their labels and titles fit.

The web UI draws a reported figure with its own default margins (left 70 px, bottom 90 px) unless the figure
brings its own, and turns on ``automargin`` for the x axis only: class names on the y axis of a confusion
matrix were cut ("_conditioner") and the axis title "True" was drawn over them. Here every margin is computed
from the longest label, both axes grow to fit (``automargin``), and each axis title stands off its labels.
"""

from __future__ import annotations

import numpy as np

FONT_PX = 12  # plotly's default font size: tick labels
TITLE_PX = 14  # axis titles
TITLE_STANDOFF = 12  # px between an axis's tick labels and its title
X_ANGLE = -45  # the x labels of a confusion matrix, slanted so that ten or fifty class names fit side by side
TOP = 80  # the web UI writes the figure's title ("test fold 10 - Iteration 25") there: its own default top margin
SAFETY = 1.1  # measured in DejaVu Sans (matplotlib's), already wider than the UI's Open Sans / Heebo


def text_px(text: str, size: int = FONT_PX) -> int:
    """An upper estimate of ``text``'s width in pixels at font ``size``: measured, not counted in characters
    ("mmmm" is twice as wide as "iiii")."""
    from matplotlib.textpath import TextPath

    if not text.strip():
        return 0
    return int(np.ceil(TextPath((0, 0), text, size=size).get_extents().width * SAFETY))


def _margins(ylabels: list[str], xlabels: list[str], x_angle: float) -> dict:
    """Room for the longest y label and the y title on the left, for the slanted x labels and the x title below."""
    left = max(text_px(s) for s in ylabels) + TITLE_STANDOFF + 2 * TITLE_PX + 10
    slant = abs(np.sin(np.radians(x_angle))) if x_angle else 0.0
    below = int(max(text_px(s) for s in xlabels) * slant) + FONT_PX + TITLE_STANDOFF + 2 * TITLE_PX + 10
    return {"l": left, "b": below, "t": TOP, "r": 30, "autoexpand": True}


def confusion_matrix(matrix: np.ndarray, class_names: list[str], xtitle: str = "Predicted",
                     ytitle: str = "True") -> dict:
    """A heatmap, true class down (first class on top) and predicted class across, each cell showing its count.
    For ``Logger.report_plotly``, which sets the title itself (to the series)."""
    names = [str(n) for n in class_names]
    counts = np.asarray(matrix, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    margin = _margins(names, names, X_ANGLE)
    trace = {
        "type": "heatmap", "x": names, "y": names, "z": counts.tolist(),
        # colour: the share of the true class (a rare class's row is as readable as a common one's)
        "customdata": np.round(share, 3).tolist(), "texttemplate": "%{z}", "colorscale": "Blues",
        "zmin": 0, "hovertemplate": "true %{y}<br>predicted %{x}<br>%{z} clips (%{customdata:.0%} of the class)"
                                    "<extra></extra>",
        "colorbar": {"title": {"text": "clips"}},
    }
    layout = {
        "xaxis": {"title": {"text": xtitle, "standoff": TITLE_STANDOFF}, "tickangle": X_ANGLE, "automargin": True,
                  "type": "category", "side": "bottom"},
        "yaxis": {"title": {"text": ytitle, "standoff": TITLE_STANDOFF}, "automargin": True, "type": "category",
                  "autorange": "reversed"},
        "margin": margin,  # (the web UI sets the height to its panel's)
        "showlegend": False,
    }
    return {"data": [trace], "layout": layout}

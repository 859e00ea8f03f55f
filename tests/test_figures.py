"""Figures as the ClearML web UI draws them: their labels and titles fit (margins, title lengths), measured.

The UI (clearml-web 2.0, single-graph.component.ts) keeps a figure's own ``layout.margin``, else uses left 70 px
and bottom 90 px, and turns ``automargin`` on for the x axis only; a debug sample's card shows about 20
characters of its series name (tests/web_ui.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.textpath import TextPath

from audioclf import audio_stats, figures, plots

sys.path.insert(0, str(Path(__file__).resolve().parent))
import web_ui  # noqa: E402

URBANSOUND8K = ["air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "engine_idling",
                "gun_shot", "jackhammer", "siren", "street_music"]
UI_DEFAULT_LEFT = 70  # the UI's left margin when a figure brings none


def width_px(text: str, size: int) -> float:
    return TextPath((0, 0), text, size=size).get_extents().width


@pytest.mark.parametrize("names", [URBANSOUND8K, ["a", "b", "c"], ["mmmmmmmmmmmmmmmmmmmmmmmm", "i"]],
                         ids=["urbansound8k", "short", "wide-letters"])
def test_the_confusion_matrix_has_room_for_its_longest_class_name_and_its_axis_titles(names):
    figure = figures.confusion_matrix(np.arange(len(names) ** 2).reshape(len(names), -1), names)
    layout, (trace,) = figure["layout"], figure["data"]
    longest = max(width_px(n, figures.FONT_PX) for n in names)
    title = figures.TITLE_PX * 1.5  # the rotated "True" takes a line of its font
    # left: the class names, then the title beyond them (it stood over "_conditioner" at the UI's 70 px)
    assert layout["margin"]["l"] >= longest + layout["yaxis"]["title"]["standoff"] + title
    # below: the slanted names and the title "Predicted"
    slant = abs(np.sin(np.radians(layout["xaxis"]["tickangle"])))
    assert layout["margin"]["b"] >= longest * slant + layout["xaxis"]["title"]["standoff"] + title
    assert layout["yaxis"]["automargin"] and layout["xaxis"]["automargin"]  # and plotly grows them if needed
    assert layout["margin"]["t"] >= 80, "the UI's own top margin, where it writes the title (50 hid it)"
    assert layout["yaxis"]["title"]["text"] == "True" and layout["xaxis"]["title"]["text"] == "Predicted"
    assert layout["yaxis"]["autorange"] == "reversed", "the first class on top, as in the CSV and the PNG"
    assert trace["x"] == trace["y"] == names and trace["texttemplate"] == "%{z}"
    assert np.array_equal(trace["z"], np.arange(len(names) ** 2).reshape(len(names), -1))


def test_the_urbansound8k_names_did_not_fit_the_web_uis_default_margin():
    """Why the figure brings its margins: the UI's 70 px hold neither 'children_playing' nor it and 'True'."""
    assert width_px("children_playing", figures.FONT_PX) > UI_DEFAULT_LEFT - figures.TITLE_PX
    assert figures.confusion_matrix(np.eye(10), URBANSOUND8K)["layout"]["margin"]["l"] > UI_DEFAULT_LEFT


@pytest.mark.parametrize("title", ["predicted children_playing", "predicted siren",
                                   "predicted " + "W" * 40, "x"])
def test_a_debug_samples_title_fits_inside_its_image(title):
    image = plots.labelled_spectrogram(np.random.default_rng(0).random((64, 173)), title, "crimson")
    width, height = plots.SAMPLE_SIZE_PX
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    band = image[: int(height * 0.2)]  # the title's band, above the spectrogram
    ink = (band < 200).any(axis=(0, 2))
    assert ink.any(), "the title is drawn"
    assert not ink[:2].any() and not ink[-2:].any(), "and never cut at the image's edges"


def test_debug_sample_series_fit_their_card():
    import training

    for name in URBANSOUND8K + ["a class name far longer than any card"]:
        label = training.sample_label(name)
        assert len(label) <= web_ui.SAMPLE_CARD_CHARS
        assert label == name or label.endswith("\u2026")


def test_the_audio_properties_figure_is_titled_for_what_it_shows():
    """ClearML titles a plotly figure with its series (Logger.report_plotly): not "clips"."""
    table = pd.DataFrame({"filepath": ["a.wav", "b.wav"], "fold": [1, 2], "class": ["x", "y"],
                          "duration_s": [4.0, 2.5], "samplerate": [44100, 22050], "channels": [1, 2],
                          "frames": [176400, 55125], "format": ["WAV", "WAV"], "subtype": ["PCM_16", "PCM_24"]})
    stats = audio_stats.AudioStats(table=table, reference_s=4.0, left_out=[])
    reported = []

    class Logger:
        def report_plotly(self, **kwargs):
            reported.append(kwargs)

    audio_stats.report(Logger(), stats)
    (call,) = reported
    assert call["title"] == "Audio properties"
    assert {"duration", "rate", "channels", "format"} <= set(call["series"].replace(",", " ").split())

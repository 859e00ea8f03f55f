"""matplotlib figures written as PNG files for the run folder (no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: agents and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import atomic  # noqa: E402


def save_figure(fig, path: Path, dpi: int) -> Path:
    """The figure as a PNG under ``path`` (folder created), through a temporary name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path, fsync=False) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path


def class_histogram_png(counts: dict[str, int], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4))
    names = list(counts)
    ax.bar(range(len(names)), [counts[n] for n in names], color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_ylabel("clips")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, 110)


def confusion_matrix_png(matrix: np.ndarray, class_names: list[str], path: Path, title: str) -> Path:
    """Rows are true classes, columns predictions; cells show counts, colour shows row-normalized recall."""
    row_sums = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, row_sums, out=np.zeros(matrix.shape, dtype=float), where=row_sums > 0)
    size = max(5.0, 0.6 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(title)
    for i in ticks:
        for j in ticks:
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    fig.tight_layout()
    return save_figure(fig, path, 110)


def spectrogram_png(spec: np.ndarray, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.imshow(spec, origin="lower", aspect="auto", cmap="magma")
    ax.set_xlabel("frame")
    ax.set_ylabel("mel bin")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, 90)


def audio_properties_png(durations: np.ndarray, bin_edges: np.ndarray, reference_s: float,
                         counts: dict[str, dict[str, int]], path: Path, title: str) -> Path:
    """2 x 2 panels: the duration histogram with a dashed line at ``reference_s`` (the feature duration), then
    one bar chart per entry of ``counts`` ({panel name: {label: clips}}: sample rate, channels, format)."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0, 0]
    ax.hist(durations, bins=bin_edges, color="tab:blue")
    ax.axvline(reference_s, color="crimson", linestyle="--", label=f"features: {reference_s:g} s")
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("clips")
    ax.legend(loc="upper left")
    for ax, (name, bars) in zip(axes.flat[1:], counts.items()):
        labels = list(bars)
        ax.bar(range(len(labels)), [bars[k] for k in labels], color="tab:blue")
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 3 else 0,
                      ha="right" if len(labels) > 3 else "center")
        ax.set_xlabel(name)
        ax.set_ylabel("clips")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, 110)


SAMPLE_SIZE_PX = (360, 240)  # a debug sample: the web UI shows it as a 180 px card, full size when clicked
SAMPLE_TITLE_PT = (18, 11)  # the title's largest and smallest font size


def labelled_spectrogram(spec: np.ndarray, title: str, color: str = "black") -> np.ndarray:
    """The spectrogram (mel bands up) under ``title`` in large type, as an RGB uint8 image for
    ``Logger.report_image``: the card under a debug sample shows about 20 characters, so what does not fit
    there (the prediction) is written into the image itself. The title's font shrinks until it fits the width;
    a title too long even then is cut with an ellipsis."""
    width, height = SAMPLE_SIZE_PX
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.8))
    ax.imshow(spec, origin="lower", aspect="auto", cmap="magma")
    ax.set_axis_off()
    text = fig.text(0.5, 0.9, title, ha="center", va="center", fontsize=SAMPLE_TITLE_PT[0], color=color)
    renderer = fig.canvas.get_renderer()
    room = width - 8
    size = SAMPLE_TITLE_PT[0]
    while text.get_window_extent(renderer).width > room and size > SAMPLE_TITLE_PT[1]:
        size -= 1
        text.set_fontsize(size)
    shown = title
    while text.get_window_extent(renderer).width > room and len(shown) > 1:
        shown = shown[:-1]
        text.set_text(shown.rstrip() + "\u2026")
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image

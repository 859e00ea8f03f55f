"""What the ClearML web UI (clearml-web 2.0, the UI of clearml-server 2.0) shows by default, restated from its
source for the tests: a test asserts that what a run reports is what a user sees first.

- Compare > Scalars: the series come from ``events.get_multi_task_metrics`` (the server sorts the variants of a
  metric), the metric "Summary" (single values) renamed " Summary", then sorted by metric with
  ``sortByField`` (lower case, the first ":" as "~", so ":monitor:*" goes last; a stable sort), and with no
  saved selection the first 8 are selected (experiment-compare-scalar-charts.component.ts: ``metrics.slice(0,
  8)``, group by "Metric + Variant" being the default); the rest are hidden until picked.
- Debug samples: a 180 px card under each image shows its series name in 12 px type on a width of 180 - 18 px
  less 2 x 12 px of padding (debug-image-snippet.component.scss): about 20 characters.
"""

from __future__ import annotations

COMPARE_SCALARS_SHOWN = 8
SAMPLE_CARD_CHARS = 20


def compare_scalars_order(series: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """(metric, variant) pairs in the order the compare view lists them."""
    by_metric: dict[str, list[str]] = {}
    for metric, variant in series:
        by_metric.setdefault(metric, []).append(variant)
    listed = [(" Summary" if m == "Summary" else m, v) for m in sorted(by_metric) for v in sorted(by_metric[m])]
    ordered = sorted(listed, key=lambda mv: mv[0].replace(":", "~", 1).lower())
    return [("Summary" if m == " Summary" else m, v) for m, v in ordered]


def compare_scalars_shown(series: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """The series the compare view selects when a user first opens it."""
    return compare_scalars_order(series)[:COMPARE_SCALARS_SHOWN]

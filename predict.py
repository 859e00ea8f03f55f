"""Classify new audio with a trained model, or export the model.

    python predict.py outputs/runs/training-.../model.pt alarm.wav          # top-3 classes, a table
    python predict.py outputs/runs/training-.../ recordings/ --format csv --output predictions.csv
    python predict.py model.pt long_recording.flac --timeline --window 2 --hop 1
    python predict.py model.pt clips/ --format json > predictions.json    # JSON always has the timeline
    python predict.py <ClearML model id or training task id> alarm.mp3     # fetched when ClearML is configured
    python predict.py model.pt --export onnx --output model.onnx           # export only, no prediction

MODEL is a model.pt written by training.py, a run folder holding one, or (with
ClearML credentials configured and not --offline) a ClearML model id or a
training task id. AUDIO is files (any format libsndfile reads: WAV, FLAC, OGG,
AIFF, MP3, ...) or folders, searched recursively for .wav .flac .ogg .oga
.opus .aiff .aif .aifc .mp3. Any sample rate and channel count: every file is
mixed to mono and resampled exactly as in training, and every feature parameter
comes from the model file (nothing is declared here).

Each file is cut into windows (default: the model's clip duration, every half
of it); a window shorter than the model's clip (a short file, the end of a long
one) is filled like a short training clip: repeated from its start, or zero-padded
for a model whose features were made with --pad zero. Each window gets softmax
probabilities; the file's result is the MEAN OF ITS WINDOW PROBABILITIES. The
output has the top-k classes of each file, and with --timeline (always in JSON)
those of each window with its start and end in seconds.

Files that do not decode are reported with the reason (in the output and on
stderr) and the others are still classified; the exit status is 1 only when no
file could be classified. Prediction needs no ClearML task.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from audioclf import atomic, cli, stopping
from audioclf.audio import AudioDecodeError
from audioclf.cli import DEVICE_CHOICES, device_name, positive_float, positive_int
from audioclf.export import EXPORT_FORMATS, SUFFIXES, default_export_path, export_file
from audioclf.errors import UserError
from audioclf.inference import AGGREGATE, Classifier, FileResult, find_audio_files, load_classifier, resolve_model

FORMATS = ("table", "csv", "json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="MODEL",
                        help="model.pt, a training run folder, or (online) a ClearML model id or training task id")
    parser.add_argument("audio", metavar="AUDIO", nargs="*",
                        help="audio files or folders (searched recursively); required unless --export")
    out = parser.add_argument_group("output")
    out.add_argument("--top-k", type=positive_int, default=3,
                     help="classes listed per file and per window (default: %(default)s)")
    out.add_argument("--format", choices=FORMATS, default="table",
                     help="table (for reading), csv (one row per file, and per window with --timeline) or json "
                          "(per file, always with its windows) (default: %(default)s)")
    out.add_argument("--output", type=Path, default=None,
                     help="write the results to this file (default: standard output); with --export, the "
                          "exported model (default: next to MODEL's file as <name>.onnx or <name>.torchscript.pt; "
                          "in the current folder for a ClearML id)")
    out.add_argument("--timeline", action="store_true",
                     help="table and csv: add one row per window after each file's row (default: off; JSON "
                          "always includes the windows)")
    out.add_argument("--no-progress", action="store_true",
                     help="no progress bar (default: a bar on stderr when there are several files)")
    win = parser.add_argument_group("windows (the file's result is the mean of its window probabilities)")
    win.add_argument("--window", type=positive_float, default=None,
                     help="window length in seconds, at most the model's clip duration (default: the model's "
                          "clip duration, 4.0 s for the default features)")
    win.add_argument("--hop", type=positive_float, default=None,
                     help="seconds between window starts (default: half the window)")
    run = parser.add_argument_group("execution")
    run.add_argument("--device", type=device_name, default="auto", help=f"{DEVICE_CHOICES} (default: %(default)s)")
    windows = run.add_argument("--window-batch", type=positive_int, default=64,
                               help="windows through the model at once; bounds memory, the probabilities do not "
                                    "depend on it (default: %(default)s)")
    cli.alias(run, "--batch-size", windows)
    run.add_argument("--offline", action="store_true",
                     help="run without a ClearML server: never look MODEL up on one (default: look it up when it "
                          "is not a local file and ClearML credentials are configured)")
    run.add_argument("--export", choices=EXPORT_FORMATS, default=None,
                     help="write MODEL as TorchScript or ONNX (checked against PyTorch) plus a <file>.json with "
                          "its feature config and class names, and predict nothing (default: no export)")
    return parser


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


# ----------------------------------------------------------------------------- results
def _top(result: FileResult, k: int, probabilities=None) -> list[dict]:
    return [{"class": name, "probability": p} for name, p in result.top(k, probabilities)]


def file_record(result: FileResult, top_k: int) -> dict:
    """One file's result as plain data: aggregate top-k and the per-window timeline."""
    info = result.info
    return {
        "path": result.path,
        "duration_s": info.duration_s,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "format": f"{info.format}/{info.subtype}",
        "num_windows": len(result.starts_s),
        "top": _top(result, top_k),
        "windows": [{"start_s": float(start), "end_s": float(end), "top": _top(result, top_k, probs)}
                    for start, end, probs in zip(result.starts_s, result.ends_s, result.probabilities)],
    }


def model_record(clf: Classifier, ref: str) -> dict:
    return {"ref": ref, "source": clf.source, "arch": clf.bundle.get("arch"), "class_names": clf.class_names,
            "feature_config": clf.config.to_dict(), "test_metrics": clf.bundle.get("metrics", {}).get("test")}


def classify_all(clf: Classifier, files: list[Path], args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """(records of the files classified, [{path, reason}] of those that failed); a failure is never fatal."""
    records, errors = [], []
    quiet = {"disable": True} if args.no_progress or len(files) < 2 else {}  # else tqdm's default (TQDM_DISABLE)
    bar = tqdm(files, unit="file", desc="predict", file=sys.stderr, **quiet)
    for path in bar:
        try:
            result = clf.classify_file(path, args.window, args.hop, batch_size=args.window_batch)
        except AudioDecodeError as exc:
            reason = exc.reason
        except (RuntimeError, ValueError, MemoryError) as exc:  # e.g. a rate the resampler refuses
            reason = f"{type(exc).__name__}: {exc}"
        else:
            records.append(file_record(result, args.top_k))
            continue
        errors.append({"path": str(path), "reason": reason})
        tqdm.write(f"warning: {path}: {reason}", file=sys.stderr)
    return records, errors


# ----------------------------------------------------------------------------- formatting
def _row(path: str, window, start: float, end: float, top: list[dict], k: int) -> dict:
    row = {"file": path, "window": window, "start_s": round(start, 3), "end_s": round(end, 3)}
    for i in range(k):
        row[f"class_{i + 1}"], row[f"prob_{i + 1}"] = top[i]["class"], top[i]["probability"]
    return row


def rows(report: dict, timeline: bool) -> pd.DataFrame:
    """One row per file ('all': the aggregate), then one per window with ``timeline``, then failures."""
    k = report["settings"]["top_k"]
    out = []
    for rec in report["files"]:
        out.append(_row(rec["path"], "all", 0.0, rec["duration_s"], rec["top"], k) | {"error": ""})
        if timeline:
            out += [_row(rec["path"], i, w["start_s"], w["end_s"], w["top"], k) | {"error": ""}
                    for i, w in enumerate(rec["windows"])]
    for err in report["errors"]:
        out.append({"file": err["path"], "error": err["reason"]})
    columns = ["file", "window", "start_s", "end_s"] + [f"{n}_{i + 1}" for i in range(k) for n in ("class", "prob")]
    return pd.DataFrame(out, columns=columns + ["error"])


def render(report: dict, fmt: str, timeline: bool) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2) + "\n"
    table = rows(report, timeline)
    if fmt == "csv":
        buf = io.StringIO()
        table.to_csv(buf, index=False, float_format="%.6f")
        return buf.getvalue()
    model, settings = report["model"], report["settings"]
    lines = [f"model: {model['source']} ({model['arch']}, {len(model['class_names'])} classes); windows of "
             f"{settings['window_s']:g} s every {settings['hop_s']:g} s; a file's probabilities are the "
             f"{AGGREGATE}"]
    good = table[table["error"] == ""].drop(columns="error")
    if len(good):
        width = int(good["file"].str.len().max())
        lines.append(good.to_string(index=False, float_format=lambda v: f"{v:.3f}",
                                    formatters={"file": lambda f: f"{f:<{width}}"}))
    lines += [f"FAILED {e['path']}: {e['reason']}" for e in report["errors"]]
    lines.append(f"{len(report['files'])} file(s) classified, {len(report['errors'])} failed")
    return "\n".join(lines) + "\n"


def write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(output, text)


# ----------------------------------------------------------------------------- commands
def export(args: argparse.Namespace) -> dict:
    """--export: write the exported model and its sidecar; nothing is predicted."""
    path = resolve_model(args.model, offline=args.offline)
    local = Path(args.model).exists()  # a ClearML download lives in the SDK's cache: write here instead
    output = args.output or (default_export_path(path, args.export) if local
                             else Path.cwd() / f"{path.stem}{SUFFIXES[args.export]}")
    result = export_file(path, args.export, output)
    print(f"exported {args.export}: {result.path} (largest difference from PyTorch {result.max_abs_diff:.2g}); "
          f"feature config and class names: {result.sidecar}")
    return {"export": {"format": result.format, "path": str(result.path), "sidecar": str(result.sidecar),
                       "max_abs_diff": result.max_abs_diff}}


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (the same path, or links to one file)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def main(argv: list[str] | None = None) -> dict:
    """Parse, classify, write; returns the report (model, settings, files, errors) that --format json writes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output is not None and args.output.is_dir():
        parser.error(f"--output {args.output} is a folder; give the name of a file to write")
    if args.output is not None and Path(args.model).exists() and _same_file(args.output, Path(args.model)):
        parser.error(f"--output {args.output} is the model file itself; give another file name")
    try:
        if args.export:
            if args.audio:
                parser.error("--export writes a model and predicts nothing; drop the AUDIO arguments")
            return export(args)
        if not args.audio:
            parser.error("give AUDIO files or folders to classify (or --export FORMAT)")
        clf = load_classifier(args.model, args.device, offline=args.offline)
        window, hop = clf.window_samples(args.window, args.hop)
        args.top_k = min(args.top_k, len(clf.class_names))
    except UserError as exc:  # a bad model file or id, a --window the model cannot take, no CUDA...
        fail(str(exc))
    files, problems = find_audio_files(args.audio)
    if args.output is not None and any(_same_file(args.output, Path(f)) for f in files):
        parser.error(f"--output {args.output} is one of the audio files to classify; give another file name")
    for path, reason in problems:
        print(f"warning: {path}: {reason}", file=sys.stderr)
    records, errors = classify_all(clf, files, args)
    rate = clf.config.sample_rate
    report = {
        "model": model_record(clf, args.model),
        "settings": {"window_s": window / rate, "hop_s": hop / rate, "top_k": args.top_k,
                     "aggregate": AGGREGATE, "device": str(clf.device)},
        "files": records,
        "errors": [{"path": p, "reason": r} for p, r in problems] + errors,
    }
    write(render(report, args.format, args.timeline), args.output)
    print(f"{len(records)} file(s) classified, {len(report['errors'])} failed"
          + (f"; results in {args.output}" if args.output else ""), file=sys.stderr)
    return report


def exit_code(report: dict) -> int:
    """0 when at least one file was classified (or for an export), 1 when every file failed."""
    return 0 if "export" in report or report["files"] else 1


if __name__ == "__main__":
    stopping.install()
    try:
        sys.exit(exit_code(main(sys.argv[1:])))
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGINT or SIGTERM (stopping.py)
        print(f"interrupted: predict.py stopped by {stopping.describe(exc)}; nothing was written (the results are "
              "written whole once every file is classified): rerun the same command", file=sys.stderr)
        sys.exit(stopping.exit_status(exc))
    except OSError as exc:  # a full disk or an unwritable --output: one line, not a traceback
        from audioclf.tracking import user_message

        message = user_message(exc)
        if message is None:
            raise
        fail(message)

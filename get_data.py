"""Stage 1: get the audio and register it as the raw dataset.

    python get_data.py                                   # built-in synthetic data (1000 clips)
    python get_data.py --source urbansound8k             # the official archive (Zenodo, 6 GB, md5-checked)
    python get_data.py --source clearml-subset           # ClearML's hosted subset (the seed's data)
    python get_data.py --source esc50 --esc10            # ESC-50, or its 10-class subset ESC-10
    python get_data.py --source /data/UrbanSound8K       # a folder or archive on disk (only read)
    python get_data.py --source urbansound8k --classes dog_bark siren   # a subset of the classes

Source -> normalized metadata table (filepath, fold, label, class + the
original columns) -> table checks (columns, folds, classes, duplicates: a
problem stops the run here) -> clip checks (files missing on disk, files not
listed, clips that do not decode: skipped, listed in skipped_clips.csv with the
reason, never trained on) -> a dataset with the audio, the original metadata
folder, ``metadata.csv``, ``label_map.csv`` and ``audio_info.csv`` (each clip's
duration, sample rate, channels and format, from the headers the clip checks
read), tagged, with the table as an artifact, a class-distribution histogram and
an audio-properties figure (durations against the default feature length, rates,
channels, formats; also audio_properties.png in the run folder and a printed
summary that names unreadable clips). Prints the dataset id for
preprocessing.py. Downloads are cached, resumed and checksum-verified;
archives are extracted safely; the source's own files are never modified.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
from pathlib import Path

import pandas as pd

from audioclf import atomic, audio_stats, cli, metadata, naming, plots, sources, stopping, tracking

SKIPPED_FILE = "skipped_clips.csv"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="synthetic",
                        help="'synthetic' (generated, UrbanSound8K layout), 'urbansound8k' (official archive, "
                             "Zenodo record 1203745), 'clearml-subset' (ClearML's hosted subset), 'esc50' (ESC-50 "
                             "from GitHub), a folder or .zip/.tar/.tar.gz archive in UrbanSound8K or ESC-50 "
                             "layout, or an http(s) URL of such an archive (default: %(default)s)")
    parser.add_argument("--classes", nargs="+", default=None, metavar="CLASS",
                        help="keep only these classes (names, comma- or space-separated); labels are re-indexed "
                             "0..K-1 in the source's class order and the mapping is saved as label_map.csv "
                             "(default: every class)")
    parser.add_argument("--esc10", action="store_true",
                        help="ESC-50 only: keep the 10-class ESC-10 subset (default: all 50 classes)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where downloaded archives are kept, so that a second run does not download again "
                             "(default: <output-dir>/downloads)")
    parser.add_argument("--num-clips", type=cli.positive_int, default=1000,
                        help="synthetic source: number of clips, 10..8690, mirroring the real fold and class "
                             "distribution (default: %(default)s)")
    data_seed = parser.add_argument("--data-seed", type=int, default=0,
                                    help="random seed of the data this run makes (synthetic source) "
                                         "(default: %(default)s)")
    cli.alias(parser, "--seed", data_seed)
    parser.add_argument("--workers", type=cli.positive_int, default=cli.workers_default(),
                        help="parallel workers: processes that generate audio (synthetic source) and threads that "
                             "check that every clip decodes (default: every core, here %(default)s)")
    parser.add_argument("--dataset-name", default=None,
                        help="name of the registered dataset: a dataset of the same name and project is a new "
                             "version of it (default: from the source: 'UrbanSound8K raw' for the official archive, "
                             "'UrbanSound8K raw (synthetic, 1000 clips, seed 0)' for the built-in data, 'ESC-50 raw', "
                             "'ESC-10 raw', '<layout> raw (<folder or archive name>)'; --classes adds the classes)")
    parser.add_argument("--tags", nargs="*", default=["raw", "audio"],
                        help="dataset tags (default: %(default)s)")
    tracking.add_tracking_args(parser, stage="get_data")
    return parser


def parse_classes(values: list[str] | None) -> list[str] | None:
    """--classes a b,c -> [a, b, c]; None or nothing -> None (every class)."""
    return cli.name_list(values)


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What can be known wrong before any download, generation or ClearML session (so a typo leaves no
    offline session behind): the source, the classes it has, the clip count. An argparse error, exit 2."""
    for problem in (cli.source_problem(args.source), cli.num_clips_problem(args.source, args.num_clips),
                    cli.classes_problem(args.source, parse_classes(args.classes), args.esc10)):
        if problem:
            parser.error(problem)
    local = Path(args.source).expanduser()
    if local.is_dir() and args.output_dir.expanduser().resolve().is_relative_to(local.resolve()):
        parser.error(f"--output-dir {args.output_dir} is inside the source folder {args.source}: the source is "
                     "never written to, and its own outputs would be read back as clips; give an --output-dir "
                     "outside it (or set AUDIOCLF_HOME)")


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    with tracking.stage("get_data", args, parser, task_type="data_processing", tags=args.tags,
                        task_name=lambda: naming.get_data_name(build_parser(), args), kept=kept_when_stopped) as run, \
            contextlib.ExitStack() as held:
        cache_dir = args.cache_dir if args.cache_dir is not None else run.output_dir / "downloads"
        # A staged source (generated or extracted) is held under a lock until its files are in the dataset:
        # a second get_data on the same source and --output-dir waits instead of sharing the folder.
        source = sources.resolve_source(args.source, run.output_dir / "staging", args.num_clips, args.data_seed,
                                        args.workers, cache_dir=cache_dir, online=not run.offline)
        held.callback(source.release)
        # Checks before any heavy work; a staged source is kept when they stop the run (the rerun reuses it).
        table, listed, label_map = _read_and_check_table(source, args)
        report = metadata.check_clips(table, source.root, source.layout.audio_dir, listed=listed,
                                      workers=args.workers)
        _report_skipped(run, report.skipped, source, listed_count=len(table))
        table, skipped = report.kept, report.skipped
        if table.empty:
            raise metadata.MetadataError(f"no usable clip in {source.root}: all {len(skipped)} were skipped; see "
                                         f"{run.run_dir / SKIPPED_FILE} for the reasons")
        table, label_map = _reindex_if_classes_vanished(table, source, label_map)
        class_names = metadata.class_names_of(table)
        counts = table["class"].value_counts().reindex(class_names).fillna(0).astype(int)
        # Durations, rates, channels, formats: from the headers the clip checks read (no file opened again).
        audio = audio_stats.describe(table, report.audio_info, skipped, audio_stats.feature_duration_s())
        print(f"audio: {audio_stats.summary(audio)}", flush=True)
        dataset = _register(tracking.open_store(run), args, source, table, label_map, counts, audio)

        run.logger.report_histogram(title="Class distribution", series="clips", values=counts.tolist(),
                                    xlabels=class_names, xaxis="class", yaxis="clips", iteration=0)
        png = plots.class_histogram_png(counts.to_dict(), run.run_dir / "class_distribution.png",
                                        f"{len(table)} clips, {len(class_names)} classes")
        audio_stats.report(run.logger, audio)
        audio_png = audio_stats.save_png(audio, run.run_dir / audio_stats.PNG_NAME)
        run.artifact("audio_info", audio.table)
        atomic.write_csv(run.run_dir / audio_stats.INFO_FILE, audio.table)
        run.table("Metadata", table.head(200))
        run.table("Classes", label_map, csv_name=metadata.LABEL_MAP_FILE)
        run.artifact("metadata", table)
        atomic.write_csv(run.run_dir / metadata.METADATA_FILE, table)
        run.output("dataset_id", dataset.id)
        result = {"dataset_id": dataset.id, "num_clips": len(table), "num_skipped": len(skipped),
                  "classes": class_names, "layout": source.layout.name, "histogram": str(png),
                  "audio_report": str(audio_png), "audio_info": str(run.run_dir / audio_stats.INFO_FILE),
                  "audio_summary": audio_stats.summary(audio),
                  "skipped_report": str(run.run_dir / SKIPPED_FILE), "run_dir": str(run.run_dir),
                  **run.identity()}
        # Printed before the task closes, so that the task's console on the server ends with them too.
        print(f"raw dataset id: {dataset.id}  ({len(table)} clips, {len(class_names)} classes)")
        print(f"results: {run.where()}", flush=True)
    return result


def kept_when_stopped(run: tracking.Run) -> str:
    """What a stopped get_data run kept: the clips generated or extracted so far, and a partial download."""
    return (f"the clips generated or extracted so far (under {run.output_dir / 'staging'}) and any partial download "
            "are kept and reused: rerun the same command to resume")


def _read_and_check_table(source: sources.SourceFolder, args: argparse.Namespace):
    """The normalized table after the table-level checks and class selection, every path the source lists,
    and the label map. Raises MetadataError (the run stops) for a table that needs fixing."""
    layout = source.layout
    origin = source.root / layout.csv
    table = metadata.read_table(source.root, layout)
    try:
        metadata.validate(table, folds=layout.folds)  # columns, folds, duplicates, safe paths, labels
    except metadata.MetadataError as exc:
        raise metadata.MetadataError(f"{origin}: {exc}; fix these rows of the file (or restore the original)") from exc
    listed = set(table["filepath"])
    if args.esc10:
        if layout is not metadata.ESC50:
            raise metadata.MetadataError(f"--esc10 applies to ESC-50, but {origin} is in {layout.name} layout; "
                                         "drop --esc10 or use --source esc50")
        table = metadata.select_esc10(table, origin)
    table = metadata.select_classes(table, parse_classes(args.classes), layout.class_id, origin)
    return table, listed, metadata.label_map(table, layout.class_id)


def _reindex_if_classes_vanished(table: pd.DataFrame, source: sources.SourceFolder, label_map: pd.DataFrame):
    """When skipping clips removed every clip of a class, labels are re-indexed so they stay 0..K-1."""
    if table["label"].nunique() == len(label_map):
        return table, label_map
    gone = sorted(set(label_map["class"]) - set(table["class"]))
    print(f"warning: no usable clip left for the classes {gone}; they are left out and the labels re-indexed")
    table = table.copy()
    table["label"] = metadata.reindexed_labels(table[source.layout.class_id])
    return table, metadata.label_map(table, source.layout.class_id)


def _report_skipped(run: tracking.Run, skipped: pd.DataFrame, source: sources.SourceFolder,
                    listed_count: int) -> None:
    """skipped_clips.csv in the run folder (always, maybe empty), a ClearML table and a printed summary."""
    path = run.run_dir / SKIPPED_FILE
    atomic.write_csv(path, skipped)
    if skipped.empty:
        return
    run.table("Skipped clips", skipped)
    print(f"skipped {len(skipped)} files of {source.root} (left out of the dataset; each with its reason in {path}):")
    for reason, count in skipped["reason"].str.split(":").str[0].value_counts().items():
        print(f"  {count:6d}  {reason}")
    missing = int((skipped["reason"] == metadata.MISSING).sum())
    if missing > listed_count / 2:
        print(f"warning: {missing} of the {listed_count} clips listed are missing under {source.root}; "
              "is --source the complete dataset folder?")


def _register(store, args: argparse.Namespace, source: sources.SourceFolder, table: pd.DataFrame,
              label_map: pd.DataFrame, counts: pd.Series, audio: audio_stats.AudioStats):
    """Build and finalize the raw dataset: exactly the clips in ``table``, the source's metadata folder,
    metadata.csv, label_map.csv and audio_info.csv (each clip's duration, rate, channels, format). Files
    this program staged are hard-linked (the staged folder stays whole until the dataset is complete, so a
    run killed at any point leaves a reusable stage), a user's are copied. Online, the class histogram, the
    audio-properties figure and one audio sample per class go on the dataset's own page."""
    layout = source.layout
    name = args.dataset_name or naming.raw_dataset_name(layout.name, args.source, args.num_clips, args.data_seed,
                                                        parse_classes(args.classes), args.esc10)
    draft = store.create(name=name, project=args.project, tags=args.tags, description=source.description)
    try:
        draft.add_files(source.root, files=sorted(table["filepath"]), link=source.owned)
        draft.add_files(source.root / layout.meta_dir, dataset_path=layout.meta_dir, link=source.owned)
        draft.add_table(metadata.METADATA_FILE, table)
        draft.add_table(metadata.LABEL_MAP_FILE, label_map)
        draft.add_table(audio_stats.INFO_FILE, audio.table)
        logger = getattr(draft, "logger", None)
        if logger is not None:
            logger.report_histogram(title="Class distribution", series="clips", values=counts.tolist(),
                                    xlabels=list(counts.index), xaxis="class", yaxis="clips", iteration=0)
            audio_stats.report(logger, audio)
            for _, row in table.drop_duplicates("class").iterrows():
                logger.report_media(title="Audio sample", series=row["class"], iteration=0,
                                    local_path=str(source.root / row["filepath"]))
        dataset = draft.finalize()
    except BaseException:
        draft.discard()
        raise
    if source.owned:  # the dataset holds its own links to the files: the staged copy can go
        shutil.rmtree(source.staged, ignore_errors=True)
    return dataset


if __name__ == "__main__":
    stopping.run_script(main, "get_data")

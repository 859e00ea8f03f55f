"""Stage 1: get the audio and register it as the raw dataset.

    python get_data.py                                   # built-in synthetic data (1000 clips)
    python get_data.py --source /data/UrbanSound8K       # a copy already on disk (only read)

Source -> normalized metadata table (filepath, fold, label, class + the
original columns) -> validation -> a dataset with the audio, the original CSV
and ``metadata.csv``, tagged, with the table as an artifact and a
class-distribution histogram. Prints the dataset id for preprocessing.py.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from audioclf import metadata, plots, sources, tracking


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="synthetic",
                        help="'synthetic' (generated, UrbanSound8K layout) or a folder in UrbanSound8K layout "
                             "(default: %(default)s)")
    parser.add_argument("--num-clips", type=int, default=1000,
                        help="synthetic source: number of clips, 10..8690, mirroring the real fold and class "
                             "distribution (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic source: random seed (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2,
                        help="synthetic source: processes that generate audio (default: %(default)s)")
    parser.add_argument("--dataset-name", default="UrbanSound8K raw",
                        help="name of the registered dataset (default: %(default)s)")
    parser.add_argument("--tags", nargs="*", default=["raw", "audio"],
                        help="dataset tags (default: %(default)s)")
    tracking.add_tracking_args(parser, stage="get_data")
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = tracking.start_run("get_data", args, parser, task_type="data_processing", tags=args.tags)
    try:
        source = sources.resolve_source(args.source, run.output_dir / "staging", args.num_clips, args.seed,
                                        args.workers)
        table = metadata.read_urbansound8k(source.root)
        metadata.validate(table, root=source.root, folds=range(1, 11))
        class_names = metadata.class_names_of(table)

        dataset = _register(tracking.open_store(run), args, source, table)

        counts = table["class"].value_counts().reindex(class_names).fillna(0).astype(int)
        run.logger.report_histogram(title="Class distribution", series="clips", values=counts.tolist(),
                                    xlabels=class_names, xaxis="class", yaxis="clips", iteration=0)
        png = plots.class_histogram_png(counts.to_dict(), run.run_dir / "class_distribution.png",
                                        f"{len(table)} clips, {len(class_names)} classes")
        run.table("Metadata", table.head(200))
        run.artifact("metadata", table)
        table.to_csv(run.run_dir / metadata.METADATA_FILE, index=False)
        run.output("dataset_id", dataset.id)
        result = {"dataset_id": dataset.id, "num_clips": len(table), "classes": class_names,
                  "histogram": str(png), "run_dir": str(run.run_dir), **run.identity()}
    except (sources.SourceError, metadata.MetadataError) as exc:
        tracking.fail(str(exc))
    finally:  # on success, on a bad input and on Ctrl-C alike: the session is closed
        run.close()
    print(f"raw dataset id: {dataset.id}  ({len(table)} clips, {len(class_names)} classes)")
    print(f"results: {run.where()}")
    return result


def _register(store, args: argparse.Namespace, source: sources.SourceFolder, table):
    """Build and finalize the raw dataset. Files this program staged are moved, a user's are copied."""
    draft = store.create(name=args.dataset_name, project=args.project, tags=args.tags,
                         description=source.description)
    try:
        draft.add_files(source.root / "audio", dataset_path="audio", move=source.owned)
        draft.add_files(source.root / "metadata", dataset_path="metadata", move=source.owned)
        draft.add_table(metadata.METADATA_FILE, table)
        return draft.finalize()
    except BaseException:
        draft.discard()
        raise
    finally:
        if source.owned:  # moved into the dataset, or half moved: a rerun regenerates it either way
            shutil.rmtree(source.root, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Stage 2: raw dataset -> log-mel features dataset (a CHILD of the raw one).

    python preprocessing.py --dataset-id <raw id printed by get_data.py>

Each clip is decoded, mixed to mono, resampled, trimmed to a fixed duration or
repeated to fill it (``--pad loop``; ``--pad zero`` appends silence), turned
into a mel spectrogram in dB and stored as one float16
``features/<audio path>.npy``. The child dataset adds only those files plus
``features.csv`` (the clip index) and ``features.json`` (the feature config and
class names); the audio stays with the parent and is never modified. Clips that
do not decode, or whose spectrogram overflows (float samples far above full
scale), are skipped and listed in ``skipped_clips.csv``. Prints the new id for
training.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from audioclf import atomic, cli, locks, metadata, naming, plots, stopping, tracking
from audioclf.audio import PAD_MODES
from audioclf.cli import DEVICE_CHOICES, device_name, non_negative_int, positive_int
from audioclf.device import device_before_work, resolve_device
from audioclf.errors import UserError
from audioclf.features import FeatureConfig
from audioclf.preprocess import extract_features

FEATURES_INDEX = metadata.FEATURES_INDEX
FEATURES_CONFIG = metadata.FEATURES_CONFIG
_DEFAULTS = FeatureConfig()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-id", required=True, help="id of the raw dataset (printed by get_data.py)")
    feats = parser.add_argument_group("features (the seed's steps; defaults tuned for 4 s clips)")
    feats.add_argument("--sample-rate", type=int, default=_DEFAULTS.sample_rate,
                       help="resample every clip to this rate in Hz (default: %(default)s, as the seed)")
    feats.add_argument("--n-fft", type=int, default=_DEFAULTS.n_fft,
                       help="STFT window in samples (default: %(default)s; the seed used torchaudio's 400)")
    feats.add_argument("--hop-length", type=int, default=_DEFAULTS.hop_length,
                       help="STFT hop in samples (default: %(default)s; the seed used 200)")
    feats.add_argument("--n-mels", type=int, default=_DEFAULTS.n_mels,
                       help="mel bands (default: %(default)s; the seed's notebook used 128, its pipeline 64)")
    feats.add_argument("--f-min", type=float, default=_DEFAULTS.f_min, help="lowest mel frequency in Hz (default: %(default)s)")
    feats.add_argument("--f-max", type=float, default=_DEFAULTS.f_max,
                       help="highest mel frequency in Hz (default: the Nyquist frequency)")
    feats.add_argument("--duration", type=float, default=_DEFAULTS.duration_s,
                       help="pad or trim every clip to this many seconds (default: %(default)s, UrbanSound8K's longest)")
    feats.add_argument("--top-db", type=float, default=_DEFAULTS.top_db,
                       help="floor each spectrogram at its max minus this many dB (default: %(default)s)")
    feats.add_argument("--pad", choices=PAD_MODES, default=_DEFAULTS.pad,
                       help="a clip shorter than --duration: 'loop' repeats it from its start until the duration "
                            "is filled, 'zero' appends silence, as the seed did (default: %(default)s; chosen by "
                            "cross-validation: docs/choosing-defaults.md, 'Which evidence decided each default')")
    run_opts = parser.add_argument_group("execution")
    run_opts.add_argument("--device", type=device_name, default="auto",
                          help=f"{DEVICE_CHOICES} (default: %(default)s)")
    chunk = run_opts.add_argument("--chunk-size", type=positive_int, default=64,
                                  help="clips turned into spectrograms at once; bounds memory, the features do not "
                                       "depend on it (default: %(default)s)")
    cli.alias(run_opts, "--batch-size", chunk)
    run_opts.add_argument("--workers", type=positive_int, default=cli.workers_default(),
                          help="parallel workers: decoding threads (default: every core, here %(default)s)")
    run_opts.add_argument("--debug-samples", type=non_negative_int, default=1,
                          help="spectrogram images and their audio logged per class, on the features dataset's "
                               "page (offline: on the run's session) (default: %(default)s)")
    parser.add_argument("--dataset-name", default=None,
                        help="name of the features dataset: a dataset of the same name and project is a new version "
                             "of it (default: the raw dataset's name with 'features' for 'raw', and the feature "
                             "flags that differ from the defaults, e.g. 'UrbanSound8K features n-mels=128')")
    parser.add_argument("--tags", nargs="*", default=["features", "log-mel"], help="dataset tags (default: %(default)s)")
    tracking.add_tracking_args(parser, stage="preprocessing")
    return parser


def feature_config_from(args: argparse.Namespace) -> FeatureConfig:
    return FeatureConfig(sample_rate=args.sample_rate, n_fft=args.n_fft, hop_length=args.hop_length,
                         n_mels=args.n_mels, f_min=args.f_min, f_max=args.f_max, duration_s=args.duration,
                         top_db=args.top_db, pad=args.pad)


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    device = device_before_work(parser, args)
    try:
        config = feature_config_from(args)  # before any work or session: --n-fft 0 stops here
    except UserError as exc:
        parser.error(str(exc))
    with tracking.stage("preprocessing", args, parser, task_type="data_processing", tags=args.tags,
                        task_name=lambda: naming.preprocessing_name(build_parser(), args),
                        kept=kept_when_stopped) as run:
        config = feature_config_from(args)  # again: under an agent, args hold the values set on the server
        device = device or resolve_device(args.device)
        # What runs is recorded as it is resolved, before any work (a configuration object, written also
        # under an agent: Task.connect there would read the stored values back and write nothing).
        run.task.set_configuration_object(name="Features", config_text=json.dumps(config.to_dict(), indent=2),
                                          description="the feature config of this run (set by Args/)")
        store = tracking.open_store(run)
        raw = store.get(args.dataset_id, alias="raw_dataset", verify=args.verify)
        _require_raw(raw)
        table = raw.read_table(metadata.METADATA_FILE)
        metadata.validate(table)
        class_names = metadata.class_names_of(table)

        # The work folder is keyed by the raw id and the config, so a rerun after an interruption reuses
        # finished clips and a changed config starts afresh; a lock keeps two runs of the same raw id and
        # config from sharing it (the second waits, then computes its own copy).
        work = run.output_dir / "staging" / f"features-{raw.id}-{config.fingerprint()}"
        with locks.hold(work, f"preprocessing of {raw.id}"):
            table["feature_path"] = table["filepath"].map(metadata.feature_path)
            clips = [(row.filepath, raw.path(row.filepath), work / row.feature_path) for row in table.itertuples()]
            print(f"preprocessing {len(clips)} clips of {raw.id} on {device}: {config}")
            report = extract_features(clips, config, device, batch_size=args.chunk_size, workers=args.workers)

            skipped = pd.DataFrame(report.skipped, columns=["filepath", "reason"])
            index = table[~table["filepath"].isin(skipped["filepath"])].reset_index(drop=True)
            if index.empty:
                raise UserError("no clip could be decoded; see skipped_clips.csv in the run folder")
            features_json = {"feature_config": config.to_dict(), "fingerprint": config.fingerprint(),
                             "class_names": class_names, "num_clips": len(index), "num_skipped": len(skipped),
                             "raw_dataset_id": raw.id, "dtype": "float16",
                             "shape": [config.n_mels, config.num_frames]}
            name = args.dataset_name or naming.features_dataset_name(
                raw.name, naming.changed_flags(build_parser(), args, "preprocessing"))
            dataset = _register(store, args, name, raw, work, index, features_json, run)
            shutil.rmtree(work, ignore_errors=True)

        atomic.write_csv(run.run_dir / "skipped_clips.csv", skipped)
        if len(skipped):
            print(f"skipped {len(skipped)} clips that do not decode or overflow (listed with the reason in {run.run_dir / 'skipped_clips.csv'})")
            run.table("Skipped clips", skipped)
        run.output("dataset_id", dataset.id)
        result = {"dataset_id": dataset.id, "parent_id": raw.id, "num_clips": len(index),
                  "num_skipped": len(skipped), "computed": report.computed, "reused": report.reused,
                  "run_dir": str(run.run_dir), **run.identity()}
        # Printed before the task closes, so that the task's console on the server ends with them too.
        print(f"features dataset id: {dataset.id}  (child of {raw.id}; {len(index)} clips, {len(skipped)} skipped)")
        print(f"results: {run.where()}", flush=True)
    return result


def kept_when_stopped(run: tracking.Run) -> str:
    """What a stopped preprocessing run kept: every spectrogram written so far, in its work folder."""
    return (f"the spectrograms computed so far are kept under {run.output_dir / 'staging'} and reused: rerun the "
            "same command to resume")


def _require_raw(raw) -> None:
    kind = metadata.dataset_kind(raw.list_files())
    if kind == "features":
        parents = ", ".join(raw.parent_ids) or "its parent"
        raise UserError(f"dataset {raw.id} is a features dataset (made by preprocessing.py), not a raw one: pass "
                        f"the raw dataset id ({parents}) to preprocessing.py, or this id to training.py")
    if kind != "raw":
        raise UserError(f"dataset {raw.id} has no {metadata.METADATA_FILE}: it was not made by get_data.py; pass "
                        "the id that get_data.py printed")


def _register(store, args: argparse.Namespace, name: str, raw, work, index: pd.DataFrame, features_json: dict,
              run: tracking.Run):
    """The features dataset: a child of ``raw`` with exactly the spectrograms listed in ``index`` (linked from
    the work folder: a stray file there is never registered), features.csv and features.json. The debug
    samples go on the dataset's own page online (on the run's session offline), drawn from the local files."""
    draft = store.create(name=name, project=args.project, tags=args.tags, parent_ids=[raw.id],
                         description=f"log-mel features of {raw.id}")
    try:
        draft.add_files(work, files=index["feature_path"].tolist(), link=True)
        draft.add_table(metadata.FEATURES_INDEX, index)
        draft.add_json(metadata.FEATURES_CONFIG, features_json)
        logger = getattr(draft, "logger", None) or run.logger
        _log_debug_samples(logger, run, raw, work, index, args.debug_samples)
        dataset = draft.finalize(verify=args.verify or None)
    except BaseException:
        draft.discard()
        raise
    return dataset


def _log_debug_samples(logger, run: tracking.Run, raw, work, index: pd.DataFrame, per_class: int) -> None:
    """``per_class`` spectrogram images with their audio for every class, as the seed's debug samples.
    Read from the work folder and the raw dataset's local files: nothing is downloaded for them."""
    for _, row in index.groupby("class", sort=True).head(per_class).iterrows():
        name = row["class"]
        spec = np.load(work / row["feature_path"]).astype(np.float32)
        png = plots.spectrogram_png(spec, run.run_dir / "debug_samples" / f"{Path(row['filepath']).stem}.png",
                                    f"{name}: {row['filepath']}")
        logger.report_image(title="Spectrogram", series=name, iteration=0, local_path=str(png))
        logger.report_media(title="Audio sample", series=name, iteration=0, local_path=str(raw.path(row["filepath"])))


if __name__ == "__main__":
    stopping.run_script(main, "preprocessing")

"""Stage 2: raw dataset -> log-mel features dataset (a CHILD of the raw one).

    python preprocessing.py --dataset-id <raw id printed by get_data.py>

Each clip is decoded, mixed to mono, resampled, padded or trimmed to a fixed
duration, turned into a mel spectrogram in dB and stored as one float16
``features/<audio path>.npy``. The child dataset adds only those files plus
``features.csv`` (the clip index) and ``features.json`` (the feature config and
class names); the audio stays with the parent and is never modified. Clips that
do not decode are skipped and listed in ``skipped_clips.csv``. Prints the new id
for training.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import numpy as np
import pandas as pd

from audioclf import metadata, plots, tracking
from audioclf.device import resolve_device
from audioclf.features import FeatureConfig
from audioclf.preprocess import extract_features

FEATURES_INDEX = "features.csv"
FEATURES_CONFIG = "features.json"
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
    run_opts = parser.add_argument_group("execution")
    run_opts.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu' or 'cuda' (default: %(default)s)")
    run_opts.add_argument("--batch-size", type=int, default=64,
                          help="clips per mel batch; bounds memory (default: %(default)s)")
    run_opts.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                          help="decoding threads (default: every core, here %(default)s)")
    run_opts.add_argument("--debug-samples", type=int, default=4,
                          help="spectrogram images and their audio logged to ClearML (default: %(default)s)")
    parser.add_argument("--dataset-name", default="UrbanSound8K features",
                        help="name of the features dataset (default: %(default)s)")
    parser.add_argument("--tags", nargs="*", default=["features", "log-mel"], help="dataset tags (default: %(default)s)")
    tracking.add_tracking_args(parser, stage="preprocessing")
    return parser


def feature_config_from(args: argparse.Namespace) -> FeatureConfig:
    return FeatureConfig(sample_rate=args.sample_rate, n_fft=args.n_fft, hop_length=args.hop_length,
                         n_mels=args.n_mels, f_min=args.f_min, f_max=args.f_max, duration_s=args.duration,
                         top_db=args.top_db)


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = tracking.start_run("preprocessing", args, parser, task_type="data_processing", tags=args.tags)
    try:
        config = feature_config_from(args)
        device = resolve_device(args.device)
        store = tracking.open_store(run)
        raw = store.get(args.dataset_id, alias="raw_dataset")
        table = raw.read_table(metadata.METADATA_FILE)
        metadata.validate(table)
        class_names = metadata.class_names_of(table)

        # The work folder is keyed by the raw id and the config, so a rerun after an
        # interruption reuses finished clips and a changed config starts afresh.
        work = run.output_dir / "staging" / f"features-{raw.id}-{config.fingerprint()}"
        table["feature_path"] = table["filepath"].map(metadata.feature_path)
        clips = [(row.filepath, raw.path(row.filepath), work / row.feature_path) for row in table.itertuples()]
        print(f"preprocessing {len(clips)} clips of {raw.id} on {device}: {config}")
        report = extract_features(clips, config, device, batch_size=args.batch_size, workers=args.workers)

        skipped = pd.DataFrame(report.skipped, columns=["filepath", "reason"])
        index = table[~table["filepath"].isin(skipped["filepath"])].reset_index(drop=True)
        if index.empty:
            raise ValueError("no clip could be decoded; see skipped_clips.csv in the run folder")
        features_json = {"feature_config": config.to_dict(), "fingerprint": config.fingerprint(),
                         "class_names": class_names, "num_clips": len(index), "num_skipped": len(skipped),
                         "raw_dataset_id": raw.id, "dtype": "float16",
                         "shape": [config.n_mels, config.num_frames]}

        draft = store.create(name=args.dataset_name, project=args.project, tags=args.tags, parent_ids=[raw.id],
                             description=f"log-mel features of {raw.id}")
        draft.add_files(work / "features", dataset_path="features", move=True)
        draft.add_table(FEATURES_INDEX, index)
        draft.add_json(FEATURES_CONFIG, features_json)
        dataset = draft.finalize()
        shutil.rmtree(work, ignore_errors=True)

        skipped.to_csv(run.run_dir / "skipped_clips.csv", index=False)
        if len(skipped):
            print(f"skipped {len(skipped)} clips that do not decode (listed in {run.run_dir / 'skipped_clips.csv'})")
            run.table("Skipped clips", skipped)
        run.task.connect(config.to_dict(), name="Features")
        _log_debug_samples(run, raw, dataset, index, args.debug_samples)
        run.output("dataset_id", dataset.id)
        result = {"dataset_id": dataset.id, "parent_id": raw.id, "num_clips": len(index),
                  "num_skipped": len(skipped), "computed": report.computed, "reused": report.reused,
                  "run_dir": str(run.run_dir), **run.identity()}
    except (ValueError, LookupError) as exc:
        tracking.fail(str(exc))
    finally:  # on success, on a bad input and on Ctrl-C alike: the session is closed
        run.close()
    print(f"features dataset id: {dataset.id}  (child of {raw.id}; {len(index)} clips, {len(skipped)} skipped)")
    print(f"results: {run.where()}")
    return result


def _log_debug_samples(run: tracking.Run, raw, dataset, index: pd.DataFrame, count: int) -> None:
    """A few spectrograms with their audio, one per class, as the seed's debug samples."""
    for _, row in index.drop_duplicates("class").head(count).iterrows():
        name = row["class"]
        spec = np.load(dataset.path(row["feature_path"])).astype(np.float32)
        png = plots.spectrogram_png(spec, run.run_dir / f"sample_{name}.png", f"{name}: {row['filepath']}")
        run.logger.report_image(title="Spectrogram", series=name, iteration=0, local_path=str(png))
        run.logger.report_media(title="Audio", series=name, iteration=0, local_path=str(raw.path(row["filepath"])))


if __name__ == "__main__":
    main(sys.argv[1:])

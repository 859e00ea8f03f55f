"""Preprocessing speed and memory: the seed's per-clip loop against ours, in the same run.

    python benchmarks/preprocess.py                      # 400 generated clips of mixed rates and formats
    python benchmarks/preprocess.py --clips 1000 --memory-sizes 250,1000
    python benchmarks/preprocess.py --folder /data/UrbanSound8K/audio

Prints clips/s of the seed's loop and of ours at the SEED's settings (22050 Hz,
64 mels, n_fft 400, hop 200, 3 s) and their ratio; our clips/s at the default
settings; our peak memory (RSS) for two dataset sizes, each in a fresh process;
and GPU numbers when a GPU is present. Time on a quiet machine: a background
job skews the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audioclf.features import FeatureConfig  # noqa: E402
from audioclf.preprocess import extract_features  # noqa: E402
from audioclf.synthetic import generate_dataset  # noqa: E402

SEED_CONFIG = FeatureConfig(sample_rate=22050, n_fft=400, hop_length=200, n_mels=64, duration_s=3.0, top_db=None)


def seed_loop(files: list[Path], out_dir: Path) -> None:
    """The seed's loop: per clip, decode, build a Resample and a MelSpectrogram, save float32 .npy."""
    for i, path in enumerate(files):
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        audio = torch.from_numpy(data.T)
        resample = torchaudio.transforms.Resample(orig_freq=rate, new_freq=SEED_CONFIG.sample_rate)
        mono = torch.mean(resample(audio), dim=0, keepdim=True)
        target = SEED_CONFIG.num_samples
        mono = mono[:, :target] if mono.shape[1] >= target else torch.nn.functional.pad(mono, (0, target - mono.shape[1]))
        mel = torchaudio.transforms.MelSpectrogram(sample_rate=SEED_CONFIG.sample_rate, n_mels=SEED_CONFIG.n_mels)
        spec = torchaudio.transforms.AmplitudeToDB()(mel(mono))
        np.save(out_dir / f"{i}.npy", spec.numpy().astype(np.float32))


def ours(files: list[Path], out_dir: Path, config: FeatureConfig, device: torch.device, workers: int) -> None:
    clips = [(str(p), p, out_dir / f"{i}.npy") for i, p in enumerate(files)]
    extract_features(clips, config, device, workers=workers, progress=False)


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def memory_probe(folder: Path, limit: int, workers: int) -> None:
    """Child process: run ours on the first `limit` clips and print the peak RSS in MB."""
    files = sorted(folder.rglob("*.wav"))[:limit]
    with tempfile.TemporaryDirectory() as out:
        ours(files, Path(out), FeatureConfig(), torch.device("cpu"), workers)
    print(json.dumps({"clips": len(files), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=400, help="generated clips (default: %(default)s)")
    parser.add_argument("--folder", type=Path, default=None, help="use the .wav files under this folder instead")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel workers: our decoding threads (default: all cores)")
    parser.add_argument("--memory-sizes", default="100,400",
                        help="two clip counts for the peak-memory check (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="timings per variant; the best is kept (default: %(default)s)")
    parser.add_argument("--memory-probe", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        tmp = Path(tmp)
        folder = args.folder
        if folder is None:
            folder = tmp / "data"
            generate_dataset(folder, num_clips=args.clips, seed=0, workers=os.cpu_count() or 1, progress=False)
        if args.memory_probe is not None:
            return memory_probe(folder, args.memory_probe, args.workers)
        files = sorted(folder.rglob("*.wav"))
        rates = sorted({sf.info(str(f)).samplerate for f in files})
        print(f"{len(files)} clips, sample rates {rates}, {torch.get_num_threads()} torch threads, "
              f"{os.cpu_count()} cores, workers {args.workers}")

        def best(fn, *fn_args) -> float:
            times = []
            for _ in range(args.repeats):
                out = Path(tempfile.mkdtemp(dir=tmp))
                times.append(timed(fn, files, out, *fn_args))
            return min(times)

        cpu = torch.device("cpu")
        t_seed = best(seed_loop)
        t_ours = best(ours, SEED_CONFIG, cpu, args.workers)
        print(f"seed loop, seed settings:  {len(files) / t_seed:8.1f} clips/s")
        print(f"ours,      seed settings:  {len(files) / t_ours:8.1f} clips/s")
        print(f"ratio ours/seed:           {t_seed / t_ours:8.2f}x")
        t_default = best(ours, FeatureConfig(), cpu, args.workers)
        print(f"ours, default settings:    {len(files) / t_default:8.1f} clips/s  ({FeatureConfig()})")
        if torch.cuda.is_available():
            gpu = torch.device("cuda")
            t_gpu = best(ours, SEED_CONFIG, gpu, args.workers)
            t_gpu_default = best(ours, FeatureConfig(), gpu, args.workers)
            print(f"ours on {torch.cuda.get_device_name()}: seed settings {len(files) / t_gpu:.1f} clips/s, "
                  f"default settings {len(files) / t_gpu_default:.1f} clips/s; "
                  f"8732 clips would take {8732 / (len(files) / t_gpu_default):.1f} s")
        else:
            print("no GPU here: GPU numbers skipped")

        sizes = [int(s) for s in args.memory_sizes.split(",")]
        for size in sizes:
            if size > len(files):
                print(f"memory: {size} clips requested but only {len(files)} available; skipped")
                continue
            cmd = [sys.executable, __file__, "--folder", str(folder), "--memory-probe", str(size),
                   "--workers", str(args.workers)]
            probe = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            print(f"ours, peak memory with {probe['clips']:5d} clips: {probe['peak_rss_mb']:7.0f} MB")


if __name__ == "__main__":
    main()

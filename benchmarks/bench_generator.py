#!/usr/bin/env python
"""How fast is the synthetic generator, and how hard is its partial observation?

Generates the tiny training set (default 64 sequences x 16 frames) of each kind into a
temporary folder, with the library defaults (image size per kind, 4096 GT samples,
uncompressed npz, one worker process per CPU), and prints for each kind and run:
  wall time (and CPU seconds summed over the workers), seconds per sequence,
  partial points per frame (mean, and the smallest frame),
  GT visibility, mean over frames and sequences: "visible" in this frame,
  "hidden here but seen in another frame", "never seen" by any frame (and for scenes,
  the same over the foreground objects alone, without the floor).

    python benchmarks/bench_generator.py                       # creatures + primitives, 64 x 16
    python benchmarks/bench_generator.py --kinds scenes compositional --num 16 --repeat 2
    python benchmarks/bench_generator.py --compress            # smaller files, slower
The issue's target: 64 x 16 frames with >= 2048 points per frame in under a minute on a
2-core laptop CPU (process start-up and imports, a few seconds, come on top).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from fourdlib.data.synthetic import KINDS, generate_dataset


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=["creatures", "primitives"])
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=1, help="runs per kind (the CPU may be shared)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compress", action="store_true", help="compressed npz (~2.7x smaller, slower)")
    args = ap.parse_args()
    rows = []
    for kind in args.kinds:
        for r in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.time()
                path = generate_dataset(Path(tmp) / kind, kind, args.num, num_frames=args.frames,
                                        seed=args.seed, workers=args.workers, progress=False,
                                        compress=args.compress)
                wall = time.time() - t0
                m = json.loads(path.read_text())
                size_mb = sum(p.stat().st_size for p in Path(tmp, kind).glob("*.npz")) / 1e6
            seqs, info = m["sequences"], m["info"]
            vis = info["visibility"]
            rows.append(dict(
                kind=kind, run=r, wall_s=wall, cpu_s=info["timing"]["cpu_s"], workers=info["timing"]["workers"],
                s_per_seq=wall / len(seqs), pts_mean=np.mean([e["points_per_frame_mean"] for e in seqs]),
                pts_min=min(e["points_per_frame_min"] for e in seqs),
                below_2048=np.mean([e["points_per_frame_mean"] < 2048 for e in seqs]),
                visible=vis["visible"], hidden_seen_elsewhere=vis["hidden_seen_elsewhere"],
                never_seen=vis["never_seen"], union=1 - vis["never_seen"], disk_mb=size_mb,
                splits=info["splits"], fg=info.get("visibility_fg", {})))
            row = rows[-1]
            print(f"{kind:13s} run {r}: {args.num} seq x {args.frames} frames in {row['wall_s']:.1f} s wall "
                  f"({row['cpu_s']:.1f} CPU s, {row['workers']} workers) = {row['s_per_seq']:.2f} s/seq | "
                  f"points/frame mean {row['pts_mean']:.0f}, min {row['pts_min']} "
                  f"({row['below_2048']:.0%} of sequences average < 2048) | "
                  f"visible {row['visible']:.3f}, hidden-seen-elsewhere {row['hidden_seen_elsewhere']:.3f}, "
                  f"never seen {row['never_seen']:.3f} (union {row['union']:.3f}) | {row['disk_mb']:.0f} MB | "
                  f"splits {row['splits']}", flush=True)
            if row["fg"]:
                print(f"{'':13s}        foreground only: visible {row['fg']['visible']:.3f}, hidden-seen-elsewhere "
                      f"{row['fg']['hidden_seen_elsewhere']:.3f}, never seen {row['fg']['never_seen']:.3f}", flush=True)


if __name__ == "__main__":
    main()

"""Convert DeformingThings4D `.anime` animations into a fourdlib dataset folder.

DeformingThings4D (Li et al., 4DComplete, ICCV 2021) is distributed on request (a Google
form, see github.com/rabbityl/DeformingThings4D) as one folder per animation:

    DeformingThings4D/
      humanoids/clarie_run/clarie_run.anime      objectID_actionID
      animals/bear3EP_Agression/bear3EP_Agression.anime
      ...

Each `.anime` holds one mesh with fixed topology and per-frame vertex offsets (see
`fourdlib.data.dt4d`). This script cuts each animation into clips, films every clip with
the synthetic generator's moving depth camera (RGB-D, partial clouds, GT
surface samples, visibility, exact scene flow), and writes one `Sequence4D` `.npz` per clip
plus `manifest.json`. Units: DT4D's own renderer treats the mesh units as metres (its depth
PNGs are those units x 1000), so the default `--scale 1` keeps them; `--scale fit` makes
every animation's first frame 1 m across instead.

    python data_scripts/convert_dt4d.py /data/DeformingThings4D out/dt4d \\
        --frames 16 --step 2 --clips 4 --image-size 128 --split-by individual --test-fraction 0.1

`--split-by individual` holds out whole objects (unseen individuals), `motion` holds out
animations (unseen motions), `random` holds out animations at random.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from fourdlib.data.dt4d import convert_anime_files


def _scale(s: str):
    return s if s in ("fit", "auto") else float(s)


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help=".anime files or folders searched recursively")
    ap.add_argument("out", help="output dataset folder")
    ap.add_argument("--frames", type=int, default=16, help="frames per clip")
    ap.add_argument("--step", type=int, default=1, help="take every STEP-th frame of the file")
    ap.add_argument("--clips", type=int, default=1, help="clips per animation (0: all)")
    ap.add_argument("--image-size", type=int, default=64, help="square image side in pixels")
    ap.add_argument("--views", type=int, default=1, help="depth cameras per frame")
    ap.add_argument("--scale", type=_scale, default=1.0, help="number, 'fit' (1 m) or 'auto'")
    ap.add_argument("--fps", type=float, default=30.0, help="frame rate (DT4D states none; 30 assumed)")
    ap.add_argument("--split-by", choices=["individual", "motion", "random"], default="individual")
    ap.add_argument("--test-fraction", type=float, default=0.1)
    ap.add_argument("--max-files", type=int, default=None, help="convert only the first N (a trial run)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    files = []
    for p in map(Path, a.inputs):
        files += sorted(p.rglob("*.anime")) if p.is_dir() else [p]
    if not files:
        ap.error(f"no .anime files under {a.inputs}")
    files = files[: a.max_files]
    path = convert_anime_files(files, a.out, frames=a.frames, step=a.step, clips=a.clips or None,
                               image_size=(a.image_size, a.image_size), views=a.views, scale=a.scale,
                               fps=a.fps, split_by=a.split_by, test_fraction=a.test_fraction, seed=a.seed)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()

"""Convert Kubric MOVi examples into a fourdlib dataset folder.

The MOVi datasets (MOVi-A..F, github.com/google-research/kubric/tree/main/challenges/movi)
are TensorFlow Datasets in a public bucket. Two steps, so that fourdlib itself never needs
TensorFlow:

1. export (needs `pip install tensorflow tensorflow-datasets gcsfs`, and network):

       python data_scripts/convert_kubric.py export movi_e/256x256 movi_npz --split train --count 100
       python data_scripts/convert_kubric.py export movi_e/256x256 movi_npz --split validation --count 20

   writes one `.npz` per example with flat keys ("video", "depth", "camera/positions",
   "metadata/depth_range", "instances/quaternions", ...; see `export_tfds` below);
2. convert (fourdlib only):

       python data_scripts/convert_kubric.py convert movi_npz out/movi_e --max-depth 30

   writes one `Sequence4D` `.npz` per example plus `manifest.json`, keeping the export's split.

What the conversion assumes (from the MOVi README and movi_*.py in the Kubric repository;
details in `fourdlib.data.kubric`): depth is uint16 *distance to the camera centre* over
metadata/depth_range (converted to z-depth); quaternions are (w, x, y, z); cameras are
Blender cameras (look down -z, +y up), converted to OpenCV axes; focal_length and
sensor_width are in mm with square pixels and the principal point at the image centre;
segmentation 0 is the background; world units are metres, +z up; 12 fps.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fourdlib.data.kubric import EXPORT_KEYS, convert_movi_files, flatten


def export_tfds(name: str = "movi_e/256x256", out_dir="movi_npz", split: str = "train", count: int = 10,
                data_dir: str = "gs://kubric-public/tfds", start: int = 0) -> list[Path]:
    """Dump `count` examples of a MOVi TFDS split to `.npz` files (TensorFlow needed only here)."""
    import tensorflow_datasets as tfds  # imported here: fourdlib does not depend on TensorFlow

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = tfds.load(name, split=split, data_dir=data_dir, shuffle_files=False)
    paths = []
    for i, ex in enumerate(tfds.as_numpy(ds.skip(start).take(count))):
        flat = {k: _plain(v) for k, v in flatten(ex).items() if k in EXPORT_KEYS}
        flat["export/split"] = np.array(split)
        flat["export/dataset"] = np.array(name)
        path = out_dir / f"{name.replace('/', '_')}_{split}_{start + i:05d}.npz"
        np.savez_compressed(path, **flat)
        paths.append(path)
    return paths


def _plain(v) -> np.ndarray:
    """An array np.savez stores without pickle: text (bytes objects) becomes a str array."""
    v = np.asarray(v)
    if v.dtype == object:
        v = np.array([x.decode() if isinstance(x, bytes) else str(x) for x in v.ravel()]).reshape(v.shape)
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="TFDS -> .npz (needs tensorflow-datasets)")
    e.add_argument("name", help="e.g. movi_e/256x256")
    e.add_argument("out")
    e.add_argument("--split", default="train")
    e.add_argument("--count", type=int, default=10)
    e.add_argument("--start", type=int, default=0)
    e.add_argument("--data-dir", default="gs://kubric-public/tfds")
    c = sub.add_parser("convert", help=".npz examples -> fourdlib dataset folder")
    c.add_argument("inputs", nargs="+", help=".npz files or folders of them")
    c.add_argument("out")
    c.add_argument("--max-depth", type=float, default=None, help="drop pixels farther than this (m)")
    a = ap.parse_args(argv)
    if a.cmd == "export":
        paths = export_tfds(a.name, a.out, a.split, a.count, a.data_dir, a.start)
        print(f"wrote {len(paths)} examples to {a.out}")
        return paths
    files = []
    for p in map(Path, a.inputs):
        files += sorted(p.glob("*.npz")) if p.is_dir() else [p]
    path = convert_movi_files(files, a.out, max_depth=a.max_depth)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()

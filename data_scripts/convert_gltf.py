"""Film animated glTF / GLB assets (skinned or morph-target) into a fourdlib dataset folder.

Every animation of every file becomes one `Sequence4D` (`.npz`), evaluated by
`fourdlib.data.gltf` (skinning and morph targets per the glTF 2.0 spec) and filmed with
the synthetic generator's moving depth camera; `manifest.json` lists them with
their licence. Khronos sample models with animations (Fox, CesiumMan, BrainStem,
AnimatedMorphSphere, ...) are at github.com/KhronosGroup/glTF-Sample-Assets.

    python data_scripts/convert_gltf.py Fox.glb CesiumMan.glb out/gltf --frames 24 --image-size 128

glTF is +Y up and nominally metres; `--scale auto` (default) keeps metres when the asset's
size is plausible and otherwise rescales it to 1 m across (the Fox is ~183 units long);
the factor applied is in each sequence's meta["scale"].
"""
from __future__ import annotations

import argparse
from pathlib import Path

from fourdlib.data.gltf import convert_gltf_files


def _scale(s: str):
    return s if s in ("fit", "auto") else float(s)


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help=".glb / .gltf files or folders")
    ap.add_argument("out", help="output dataset folder")
    ap.add_argument("--frames", type=int, default=16, help="frames per animation (evenly over it)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--views", type=int, default=1)
    ap.add_argument("--scale", type=_scale, default="auto", help="number, 'fit' (1 m) or 'auto'")
    ap.add_argument("--split", default="test", help="split recorded in the manifest")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    files = []
    for p in map(Path, a.inputs):
        files += sorted([*p.rglob("*.glb"), *p.rglob("*.gltf")]) if p.is_dir() else [p]
    path = convert_gltf_files(files, a.out, num_frames=a.frames, image_size=(a.image_size, a.image_size),
                              views=a.views, scale=a.scale, split=a.split, seed=a.seed)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()

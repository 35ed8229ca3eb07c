#!/usr/bin/env python
"""Generate a synthetic 4D dataset folder (one .npz `Sequence4D` per sequence + manifest.json).

The synthetic data stands in for the papers' datasets, which cannot be downloaded here.
Every sequence is filmed by ONE moving depth camera (by default a full circle around the
object, elevation swinging between -20 and 50 degrees): one frame misses whole parts, the
union of the frames covers most of the surface, and each GT surface sample records which
frames saw it (`surface_visible`), so completeness can be split into "visible here",
"hidden here but seen in another frame" and "never seen". Per frame: RGB-D, instance
masks, partial point cloud, GT surface samples + normals, GT mesh, allocentric scene flow.

Kinds and their splits
  creatures      skinned creatures (quadruped, biped, hexapod, snake, bird, fish; random
                 proportions) doing procedural motions (walk, run, jump, turn, wag, look),
                 like DeformingThings4D in DynaTok. Splits: train; unseen_motion (seen
                 individuals, motions they never do in train); unseen_individual (held-out
                 individuals doing motions seen in train).
  primitives     one random composition of 2-5 primitives per sequence, moving and
                 twisting: no category prior, completion must come from other frames.
                 Splits: train / test.
  scenes         Kubric MOVi-like: floor (background object 0) + 3-6 static, sliding,
                 tossed objects or walking creatures. Splits: train / test.
  compositional  COM4D: static furniture layouts and single creatures in motion
                 (train / test), and both together for evaluation only (eval_mixed).

Examples
  python data_scripts/generate_synthetic.py --kind creatures --num 64 --frames 16 --out data/tiny_creatures
  python data_scripts/generate_synthetic.py --kind scenes --num 200 --size 128 --seed 1 --out data/scenes
Deterministic for --seed, whatever --workers.
"""
from __future__ import annotations

import argparse

from fourdlib.data.synthetic import KINDS, generate_dataset
from fourdlib.data.synthetic.generate import MIN_IMAGE_SIDE, OptionError, check_arguments, check_output_folder

# generate_dataset's parameter -> this script's flag, for error messages
FLAGS = {"kind": "--kind", "num_sequences": "--num", "num_frames": "--frames", "image_size": "--size",
         "n_surface": "--surface", "workers": "--workers", "test_frac": "--test-frac",
         "mixed_frac": "--mixed-frac", "motions_per_individual": "--motions-per-individual",
         "unseen_individual_frac": "--unseen-individual-frac"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=KINDS, required=True, help="which generator")
    ap.add_argument("--num", type=int, default=64, help="number of sequences (default 64)")
    ap.add_argument("--frames", type=int, default=16, help="frames per sequence (default 16)")
    ap.add_argument("--size", type=int, nargs="+", default=None, metavar="PX",
                    help="image size: one number for square images, or H W "
                         "(default per kind: 160 creatures/compositional, 128 primitives/scenes)")
    ap.add_argument("--surface", type=int, default=None,
                    help="GT surface samples per sequence (default 4096 objects, 8192 scenes)")
    ap.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs, at most 8; 1 = in-process)")
    ap.add_argument("--test-frac", type=float, default=0.2, help="test fraction (primitives, scenes, compositional)")
    ap.add_argument("--mixed-frac", type=float, default=0.2, help="eval_mixed fraction (compositional)")
    ap.add_argument("--motions-per-individual", type=int, default=None,
                    help="creatures: motions each individual performs (default 4)")
    ap.add_argument("--unseen-individual-frac", type=float, default=None,
                    help="creatures: fraction of individuals held out whole (default 0.15)")
    ap.add_argument("--static", action="store_true",
                    help="primitives: objects that do not move or deform (only the camera moves), the "
                         "course's 'static' set where every hidden side was seen by another frame")
    ap.add_argument("--compress", action="store_true",
                    help="compressed npz: ~2.7x smaller files, ~1.5x slower generation")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace the dataset an earlier run wrote in --out: the files its manifest lists "
                         "are removed, nothing else")
    args = ap.parse_args(argv)
    # Every argument is checked before any work, and a refused run makes no folder.
    if args.size is not None and len(args.size) not in (1, 2):
        ap.error("--size takes one number (square) or two (H W)")
    if args.size is not None and min(args.size) < MIN_IMAGE_SIDE:
        ap.error(f"--size: image sides must be >= {MIN_IMAGE_SIDE} pixels, got {' '.join(map(str, args.size))}")
    size = None if args.size is None else (args.size * 2)[:2]
    split_options = {}
    if args.motions_per_individual is not None:
        split_options["motions_per_individual"] = args.motions_per_individual
    if args.unseen_individual_frac is not None:
        split_options["unseen_individual_frac"] = args.unseen_individual_frac
    if split_options and args.kind != "creatures":
        ap.error("--motions-per-individual / --unseen-individual-frac apply to --kind creatures only")
    if args.static and args.kind != "primitives":
        ap.error("--static applies to --kind primitives only")
    try:
        check_arguments(args.kind, args.num, num_frames=args.frames, image_size=size, n_surface=args.surface,
                        workers=args.workers, test_frac=args.test_frac, mixed_frac=args.mixed_frac,
                        **split_options)
    except OptionError as e:
        ap.error(f"{FLAGS.get(e.option, e.option)}: {e.detail}")
    try:
        check_output_folder(args.out, args.overwrite)
    except FileExistsError as e:
        ap.error(str(e).replace("overwrite=True (--overwrite)", "--overwrite"))
    return generate_dataset(args.out, args.kind, args.num, num_frames=args.frames, seed=args.seed,
                            image_size=size, n_surface=args.surface, workers=args.workers,
                            compress=args.compress, overwrite=args.overwrite, test_frac=args.test_frac,
                            mixed_frac=args.mixed_frac,
                            maker_options={"motion": 0.0, "deform": 0.0} if args.static else None,
                            **split_options)


if __name__ == "__main__":
    main()

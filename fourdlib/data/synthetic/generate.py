"""Write a synthetic dataset folder: one `.npz` per sequence plus `manifest.json` with splits.

Splits per kind:
  creatures      "train" / "unseen_motion" / "unseen_individual" (`creature_split_plan`)
  primitives     "train" / "test" (every shape is new anyway: there is no category prior)
  scenes         "train" / "test"
  compositional  "train" / "test" for "static" layouts and "dynamic" single creatures,
                 "eval_mixed" for the mixed sequences (never trained on, as in COM4D)

Sequence i is generated from the seed (seed, i) only, so the dataset is the same whatever
the number of worker processes.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..dataset import MANIFEST, write_manifest
from .compositional import make_compositional_sequence
from .creatures import creature_split_plan, make_creature_sequence
from .primitives import LICENCE, make_primitive_sequence
from .scenes import make_scene_sequence

KINDS = ("creatures", "primitives", "scenes", "compositional")
_MAKERS = {"creatures": make_creature_sequence, "primitives": make_primitive_sequence,
           "scenes": make_scene_sequence, "compositional": make_compositional_sequence}


def sequence_seed(seed: int, index: int) -> int:
    """The seed of sequence `index` of a dataset made with `seed` (independent of workers)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def dataset_plan(kind: str, num_sequences: int, seed: int = 0, test_frac: float = 0.2,
                 mixed_frac: float = 0.2, **split_options) -> list[dict]:
    """What each sequence of the dataset is: [{"kind", "split", "kwargs": {...maker args}}].

    split_options go to `creature_split_plan` (creatures only).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if num_sequences < 1:
        raise ValueError(f"num_sequences must be >= 1, got {num_sequences}")
    if split_options and kind != "creatures":
        raise ValueError(f"options {sorted(split_options)} only apply to kind='creatures'")
    rng = np.random.default_rng([int(seed), 7])
    seeds = [sequence_seed(seed, i) for i in range(num_sequences)]
    if kind == "creatures":
        plan = creature_split_plan(num_sequences, seed, **split_options)
        return [dict(kind=kind, split=p["split"],
                     kwargs=dict(seed=s, body_plan=p["body_plan"], motion=p["motion"],
                                 individual_seed=p["individual_seed"], motion_seed=p["motion_seed"]))
                for p, s in zip(plan, seeds)]
    n_test = int(round(test_frac * num_sequences)) if num_sequences > 1 else 0
    test = set(rng.permutation(num_sequences)[:n_test].tolist())
    if kind in ("primitives", "scenes"):
        return [dict(kind=kind, split="test" if i in test else "train", kwargs=dict(seed=s))
                for i, s in enumerate(seeds)]
    n_mixed = int(round(mixed_frac * num_sequences))
    rest = num_sequences - n_mixed
    modes = ["mixed"] * n_mixed + ["static"] * (rest - rest // 2) + ["dynamic"] * (rest // 2)
    modes = [modes[j] for j in rng.permutation(num_sequences)]       # shuffled over the indices
    return [dict(kind=kind, split="eval_mixed" if m == "mixed" else ("test" if i in test else "train"),
                 kwargs=dict(seed=s, mode=m)) for i, (s, m) in enumerate(zip(seeds, modes))]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                                           # not on Linux
        return os.cpu_count() or 1


def _make_one(job):
    """Worker: generate, save and summarise one sequence (one torch thread per process).

    Returns (manifest entry, CPU seconds this took)."""
    import torch
    torch.set_num_threads(1)
    cpu = time.process_time()
    index, folder, item, common, compress = job
    seq = _MAKERS[item["kind"]](**item["kwargs"], **common, meta={"split": item["split"]})
    file = f"{index:05d}_{seq.name}.npz"
    seq.save(Path(folder) / file, compress=compress)
    reg = seq.visibility_regions()
    counts = np.array([len(p) for p in seq.partial_points])
    keep = ("name", "kind", "mode", "body_plan", "individual", "motion", "seed", "eval_only", "num_objects")
    entry = dict(file=file, split=item["split"], kind=item["kind"], num_frames=seq.num_frames,
                 **{k: seq.meta[k] for k in keep if k in seq.meta and k != "kind"},
                 points_per_frame_mean=float(counts.mean()), points_per_frame_min=int(counts.min()),
                 n_surface=int(seq.surface_points.shape[1]),
                 **{f"frac_{k}": float(v.mean()) for k, v in reg.items()})
    if seq.object_background.any():                                  # the foreground alone, as in FG vs FG+BG
        fg = ~seq.object_background[seq.surface_instance]
        entry.update({f"frac_fg_{k}": float(v[:, fg].mean()) for k, v in reg.items()})
    return entry, time.process_time() - cpu


def generate_dataset(folder, kind: str, num_sequences: int, *, num_frames: int = 16, seed: int = 0,
                     image_size=None, n_surface: int | None = None, workers: int | None = None,
                     compress: bool = False, overwrite: bool = False, progress: bool = True,
                     test_frac: float = 0.2, mixed_frac: float = 0.2, maker_options: dict | None = None,
                     **split_options) -> Path:
    """Generate `num_sequences` sequences of `kind` into `folder`; returns the manifest path.

    image_size / n_surface default to each kind's own defaults (see the make_* functions).
    workers: processes (default: the CPUs this process may use, at most 8); 1 runs in this
    process. The output does not depend on it.
    compress: files about 2.7x smaller (a 64 x 16 creature set: 180 MB instead of 470 MB), but
    zlib then takes about a third of the generation time. Deterministic for `seed`.
    maker_options: more keyword arguments for every sequence's make_* function, e.g.
    {"motion": 0, "deform": 0} for static primitive compositions (only the camera moves).
    """
    folder = Path(folder)
    if (folder / MANIFEST).exists() and not overwrite:
        raise FileExistsError(f"{folder} already holds a dataset ({MANIFEST}); pass overwrite=True "
                              f"(--overwrite) to replace it")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    plan = dataset_plan(kind, num_sequences, seed, test_frac, mixed_frac, **split_options)
    folder.mkdir(parents=True, exist_ok=True)
    common = dict(num_frames=num_frames, **(maker_options or {}))
    if image_size is not None:
        common["image_size"] = tuple(int(x) for x in image_size)
    if n_surface is not None:
        common["n_surface"] = int(n_surface)
    jobs = [(i, str(folder), item, common, compress) for i, item in enumerate(plan)]
    workers = min(_cpus(), 8) if workers is None else int(workers)
    t0 = time.time()
    bar = dict(total=len(jobs), desc=f"{kind} -> {folder.name}", disable=not progress, unit="seq")
    if workers <= 1:
        import torch
        threads = torch.get_num_threads()
        try:
            results = [_make_one(j) for j in tqdm(jobs, **bar)]
        finally:
            torch.set_num_threads(threads)
    else:
        # Not plain fork: a child forked from a process that already ran OpenMP / Embree
        # threads can hang. A fork server that has only imported the generator is safe and
        # pays the imports once.
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        if ctx.get_start_method() == "forkserver":
            ctx.set_forkserver_preload([__name__])
        with ctx.Pool(workers) as pool:
            results = list(tqdm(pool.imap(_make_one, jobs), **bar))
    entries = [e for e, _ in results]
    wall, cpu = time.time() - t0, sum(c for _, c in results)
    splits = {s: sum(e["split"] == s for e in entries) for s in sorted({e["split"] for e in entries})}
    info = dict(generator="fourdlib.data.synthetic", kind=kind, num_sequences=num_sequences,
                num_frames=num_frames, seed=seed, image_size=common.get("image_size"),
                n_surface=common.get("n_surface"), maker_options=maker_options or {}, test_frac=test_frac, mixed_frac=mixed_frac,
                split_options=split_options, splits=splits, licence=LICENCE, compressed=compress,
                visibility={k: float(np.mean([e[f"frac_{k}"] for e in entries]))
                            for k in ("visible", "hidden_seen_elsewhere", "never_seen")},
                visibility_fg={k: float(np.mean([e[f"frac_fg_{k}"] for e in entries if f"frac_fg_{k}" in e]))
                               for k in ("visible", "hidden_seen_elsewhere", "never_seen")
                               if any(f"frac_fg_{k}" in e for e in entries)},
                timing=dict(wall_s=round(wall, 2), cpu_s=round(cpu, 2), workers=workers))  # provenance only
    path = write_manifest(folder, entries, info)
    if progress:
        print(f"{len(entries)} sequences in {wall:.1f} s ({cpu:.1f} CPU s in {workers} worker(s)) -> {path} "
              f"(splits {splits})")
    return path

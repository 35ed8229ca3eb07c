"""Write a synthetic dataset folder: one `.npz` per sequence plus `manifest.json` with splits.

Splits per kind:
  creatures      "train" / "unseen_motion" / "unseen_individual" (`creature_split_plan`)
  primitives     "train" / "test" (every shape is new anyway: there is no category prior)
  scenes         "train" / "test"
  compositional  "train" / "test" for "static" layouts and "dynamic" single creatures,
                 "eval_mixed" for the mixed sequences (never trained on, as in COM4D)

Sequence i is generated from the seed (seed, i) only, so the dataset is the same whatever
the number of worker processes.

Every argument is checked (`check_arguments`, `check_output_folder`) before any work, and a
refused or failed run leaves no folder it made. The files are written into a private folder
inside the output folder and moved in once all are done. overwrite=True replaces a dataset
an earlier run of the generator wrote: the files its manifest lists are removed (after the
new manifest is in place), nothing else in the folder; a manifest another tool wrote is not
overwritten.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..dataset import MANIFEST, write_manifest
from .compositional import make_compositional_sequence
from .creatures import MOTIONS, creature_split_plan, make_creature_sequence
from .primitives import LICENCE, make_primitive_sequence
from .scenes import make_scene_sequence

KINDS = ("creatures", "primitives", "scenes", "compositional")
_MAKERS = {"creatures": make_creature_sequence, "primitives": make_primitive_sequence,
           "scenes": make_scene_sequence, "compositional": make_compositional_sequence}
GENERATOR = "fourdlib.data.synthetic"  # info["generator"] of the manifests generate_dataset writes
MIN_IMAGE_SIDE = 8


class OptionError(ValueError):
    """A bad argument of `generate_dataset`; `option` is its parameter name (the CLI maps it
    to its flag), `detail` what is wrong with it."""

    def __init__(self, option: str, detail: str):
        super().__init__(f"{option} {detail}")
        self.option, self.detail = option, detail


def _fraction(name: str, value) -> None:
    try:
        ok = 0 <= float(value) < 1  # False for NaN
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise OptionError(name, f"must be in [0, 1), got {value}")


def _at_least_one(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise OptionError(name, f"must be >= 1, got {value}")


def check_arguments(kind: str, num_sequences: int, *, num_frames: int = 16, image_size=None,
                    n_surface: int | None = None, workers: int | None = None, test_frac: float = 0.2,
                    mixed_frac: float = 0.2, **split_options) -> None:
    """Raise OptionError (a ValueError) for the first bad argument of `generate_dataset`;
    does nothing else, so that a bad run is refused before any work or any folder."""
    if kind not in KINDS:
        raise OptionError("kind", f"must be one of {KINDS}, got {kind!r}")
    _at_least_one("num_sequences", num_sequences)
    _at_least_one("num_frames", num_frames)
    if image_size is not None:
        try:
            sides = [int(x) for x in image_size]
        except (TypeError, ValueError):
            sides = []
        if len(sides) != 2 or min(sides) < MIN_IMAGE_SIDE:
            raise OptionError("image_size", f"must be (H, W) with both >= {MIN_IMAGE_SIDE} pixels, got {image_size}")
    if n_surface is not None:
        _at_least_one("n_surface", n_surface)
    if workers is not None:
        _at_least_one("workers", workers)
    _fraction("test_frac", test_frac)
    _fraction("mixed_frac", mixed_frac)
    if split_options and kind != "creatures":
        raise OptionError(sorted(split_options)[0], "only applies to kind='creatures'")
    if "unseen_individual_frac" in split_options:
        _fraction("unseen_individual_frac", split_options["unseen_individual_frac"])
    m = split_options.get("motions_per_individual")
    if m is not None and (isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m <= len(MOTIONS)):
        raise OptionError("motions_per_individual", f"must be in [1, {len(MOTIONS)}], got {m}")


def _recorded_files(folder: Path) -> set[str]:
    """The files the generator's earlier run in `folder` recorded in its manifest (plain
    names directly in the folder); FileExistsError if another tool wrote that manifest."""
    path = folder / MANIFEST
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise FileExistsError(f"{path} cannot be read ({type(e).__name__}: {e}); --overwrite only "
                              "replaces a dataset the generator wrote: move the folder away") from e
    info = m.get("info") if isinstance(m, dict) else None
    if not isinstance(info, dict) or info.get("generator") != GENERATOR or \
            not isinstance(m.get("sequences"), list):
        raise FileExistsError(f"{path} was not written by {GENERATOR} (generate_dataset); --overwrite "
                              "only replaces a dataset the generator wrote: choose another --out folder")
    names = {e.get("file") for e in m["sequences"] if isinstance(e, dict)}
    return {n for n in names if isinstance(n, str) and n and Path(n).name == n
            and n not in (".", "..", MANIFEST) and not n.startswith(".")}


def check_output_folder(folder, overwrite: bool = False) -> set[str]:
    """Can `generate_dataset` write into `folder`? Returns the files an earlier generator
    run recorded there (removed by overwrite); FileExistsError says why not."""
    folder = Path(folder)
    for p in (folder, *folder.parents):  # the folder, or the nearest part of its path that exists
        if p.exists():
            if not p.is_dir():
                raise FileExistsError(f"{p} is a file, not a folder")
            break
    if not (folder / MANIFEST).exists():
        return set()
    if not overwrite:
        raise FileExistsError(f"{folder} already holds a dataset ({MANIFEST}); pass overwrite=True "
                              f"(--overwrite) to replace it")
    return _recorded_files(folder)


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
    _fraction("test_frac", test_frac)
    _fraction("mixed_frac", mixed_frac)
    if "unseen_individual_frac" in split_options:
        _fraction("unseen_individual_frac", split_options["unseen_individual_frac"])
    rng = np.random.default_rng([int(seed), 7])
    seeds = [sequence_seed(seed, i) for i in range(num_sequences)]
    if kind == "creatures":
        plan = creature_split_plan(num_sequences, seed, **split_options)
        return [dict(kind=kind, split=p["split"],
                     kwargs=dict(seed=s, body_plan=p["body_plan"], motion=p["motion"],
                                 individual_seed=p["individual_seed"], motion_seed=p["motion_seed"]))
                for p, s in zip(plan, seeds)]
    n_test = min(int(round(test_frac * num_sequences)), num_sequences - 1)  # keep a train sequence
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


def _run_jobs(jobs: list, workers: int, bar: dict) -> list:
    """Run `_make_one` on every job, in this process (workers == 1) or in a pool."""
    if workers <= 1:
        import torch
        threads = torch.get_num_threads()
        try:
            return [_make_one(j) for j in tqdm(jobs, **bar)]
        finally:
            torch.set_num_threads(threads)
    # Not plain fork: a child forked from a process that already ran OpenMP / Embree
    # threads can hang. A fork server that has only imported the generator is safe and
    # pays the imports once.
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload([__name__])
    with ctx.Pool(workers) as pool:
        return list(tqdm(pool.imap(_make_one, jobs), **bar))


def _move_in(work: Path, folder: Path, new_files: list, old_files: set) -> None:
    """Move the new files from `work` into `folder`. A new file may replace only a file the
    earlier run recorded (`old_files`): a name clash with any other file stops the run
    before anything in `folder` changes."""
    clash = [n for n in new_files if n not in old_files and os.path.lexists(folder / n)]
    if clash:
        raise FileExistsError(f"{folder / clash[0]} exists and was not written by an earlier run of the "
                              "generator (it is not in the manifest): move it away, or choose another folder")
    for name in new_files:
        os.replace(work / name, folder / name)


def _remove_old(folder: Path, old_files: set, new_files: list) -> None:
    """Remove the earlier run's files that the new set does not replace: only names its
    manifest recorded, only plain files."""
    for name in sorted(old_files - set(new_files)):
        path = folder / name
        if path.is_file() and not path.is_symlink():
            path.unlink()


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
    check_arguments(kind, num_sequences, num_frames=num_frames, image_size=image_size, n_surface=n_surface,
                    workers=workers, test_frac=test_frac, mixed_frac=mixed_frac, **split_options)
    old_files = check_output_folder(folder, overwrite)
    plan = dataset_plan(kind, num_sequences, seed, test_frac, mixed_frac, **split_options)
    common = dict(num_frames=num_frames, **(maker_options or {}))
    if image_size is not None:
        common["image_size"] = tuple(int(x) for x in image_size)
    if n_surface is not None:
        common["n_surface"] = int(n_surface)
    workers = min(_cpus(), 8) if workers is None else int(workers)
    # The new files are written into a private folder inside `folder` and moved in at the end:
    # a failed run leaves the folder as it was (and no folder it had to create).
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".generating-", dir=folder))
    t0 = time.time()
    try:
        results = _run_jobs([(i, str(work), item, common, compress) for i, item in enumerate(plan)],
                            workers, dict(total=len(plan), desc=f"{kind} -> {folder.name}",
                                          disable=not progress, unit="seq"))
        t_done = time.time()
        _move_in(work, folder, [e["file"] for e, _ in results], old_files)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for p in created:  # only folders this run made, and only while empty
            try:
                p.rmdir()
            except OSError:
                break
        raise
    shutil.rmtree(work, ignore_errors=True)
    wall = t_done - t0
    entries = [e for e, _ in results]
    cpu = sum(c for _, c in results)
    splits = {s: sum(e["split"] == s for e in entries) for s in sorted({e["split"] for e in entries})}
    info = dict(generator=GENERATOR, kind=kind, num_sequences=num_sequences,
                num_frames=num_frames, seed=seed, image_size=common.get("image_size"),
                n_surface=common.get("n_surface"), maker_options=maker_options or {}, test_frac=test_frac, mixed_frac=mixed_frac,
                split_options=split_options, splits=splits, licence=LICENCE, compressed=compress,
                visibility={k: float(np.mean([e[f"frac_{k}"] for e in entries]))
                            for k in ("visible", "hidden_seen_elsewhere", "never_seen")},
                visibility_fg={k: float(np.mean([e[f"frac_fg_{k}"] for e in entries if f"frac_fg_{k}" in e]))
                               for k in ("visible", "hidden_seen_elsewhere", "never_seen")
                               if any(f"frac_fg_{k}" in e for e in entries)},
                timing=dict(wall_s=round(wall, 2), cpu_s=round(cpu, 2), workers=workers))  # provenance only
    path = write_manifest(folder, entries, info)  # replaces the old manifest in one step
    _remove_old(folder, old_files, [e["file"] for e in entries])
    if progress:
        print(f"{len(entries)} sequences in {wall:.1f} s ({cpu:.1f} CPU s in {workers} worker(s)) -> {path} "
              f"(splits {splits})")
    return path

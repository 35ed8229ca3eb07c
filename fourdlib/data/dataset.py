"""Dataset folders (a manifest + one `.npz` per sequence) and a torch `Dataset` over them.

A dataset folder, as written by `data_scripts/` and the converters:

    my_set/
      manifest.json     {"info": {...how it was made...},
                         "sequences": [{"file": "seq_0000.npz", "split": "train",
                                        "kind": "creatures", "num_frames": 16, ...}, ...]}
      seq_0000.npz      a `Sequence4D` (see fourdlib.data.sequence)
      ...

`SequenceDataset` samples a window of S frames (consecutive, or drawn at random in
training) and N points per frame, which is what the point-cloud methods train on: unordered partial clouds as input, complete GT
surface samples as target, and the visibility record for region-split evaluation.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_write
from .sequence import FormatError, Sequence4D

MANIFEST = "manifest.json"
WINDOWS = ("consecutive", "random")  # how SequenceDataset picks a training window's frames


def write_manifest(folder, entries: list[dict[str, Any]], info: dict[str, Any] | None = None) -> Path:
    """Write `folder/manifest.json` atomically. Each entry needs "file" and "split"."""
    folder = Path(folder)
    for i, e in enumerate(entries):
        for key in ("file", "split"):
            if key not in e:
                raise ValueError(f"manifest entry {i} has no {key!r}: {e}")
    path = folder / MANIFEST
    with atomic_write(path, "w") as f:
        json.dump({"info": info or {}, "sequences": entries}, f, indent=1, default=_json_default)
    return path


def read_manifest(folder) -> dict[str, Any]:
    """The manifest of a dataset folder, with clear errors when it is missing or malformed."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{folder} is not a dataset folder: no {MANIFEST} (make one with "
                                f"data_scripts/generate_synthetic.py or a converter in data_scripts/)")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(m, dict) or not isinstance(m.get("sequences"), list):
        raise FormatError(f"{path}: expected {{'info': ..., 'sequences': [...]}}")
    for i, entry in enumerate(m["sequences"]):
        if not (isinstance(entry, dict) and isinstance(entry.get("file"), str) and entry["file"]):
            raise FormatError(f"{path}: sequences[{i}] must be {{'file': <name>, 'split': ...}}, got {entry!r:.80}")
    return m


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def clip_sources(sources, split: str | None, convert, min_frames: int) -> tuple[list, list]:
    """What a clip dataset keeps of its sequences: (sources, converted). `sources` is a data-set
    folder (its manifest's sequences of `split`, None: all; kept as paths, read again on demand)
    or a list of Sequence4D (kept as they are). convert(sequence, name) -> a dict holding at
    least "rgb" (T, ...): the arrays the dataset keeps in memory. Every sequence needs at least
    `min_frames` frames (a clip's length)."""
    if isinstance(sources, (str, Path)):
        folder = Path(sources)
        entries = [e for e in read_manifest(folder)["sequences"] if split is None or e["split"] == split]
        if not entries:
            raise ValueError(f"{folder}: no sequences for split={split!r}")
        sources = [folder / e["file"] for e in entries]
        converted = [convert(Sequence4D.load(f), f.name) for f in sources]
    else:
        sources = list(sources)
        converted = [convert(s, f"sequence {i}") for i, s in enumerate(sources)]
    for i, seq in enumerate(converted):
        if seq["rgb"].shape[0] < min_frames:
            raise ValueError(f"sequence {i} has {seq['rgb'].shape[0]} frames, fewer than clip_frames={min_frames}")
    return sources, converted


class SequenceDataset(torch.utils.data.Dataset):
    """Windows of S frames from the sequences of one dataset folder.

    Each item is a dict of tensors:
      partial          (S, N, 3)  partial cloud per frame, N points drawn without
                                  replacement (with replacement when a frame has fewer)
      surface          (S, Ns, 3) GT surface samples, Ns = `surface_points` (all if None;
                                  a sequence with fewer: all of them in evaluation, and
                                  some repeated in training so that batches stack)
      surface_normals  (S, Ns, 3)
      visible          (S, Ns)    bool, sample seen by the camera of that frame
      frames           (S,)       frame indices in the sequence;  times (S,) seconds
      index            ()         position of the sequence in this dataset
      surface_rows     (Ns,)      long: which stored GT samples (rows of the sequence's
                                  surface_points, after foreground_only) `surface` holds;
                                  with `surface_pool` an evaluation can draw further GT
                                  samples that are not the reference ones
    Surface samples are the same material points in every frame (for evaluation only), so
    `visible.any(0)` says which samples some frame of the window saw: the "hidden here but
    seen elsewhere" region of frame s is `~visible[s] & visible.any(0)`.

    train=True: random window start and random points on every call (torch's global RNG, so
    `torch.manual_seed` and DataLoader worker seeding make it reproducible, and resuming a
    run with its RNG state replays it). train=False: the first S frames and a fixed draw per
    sequence, the same every epoch.

    Training windows (train=True only; train=False ignores both, its windows are fixed):
      windows="consecutive"  (default) S consecutive frames from a random start: what the
                             course's committed runs were trained on.
      windows="random"       S distinct frames drawn uniformly without replacement from the
                             whole sequence, returned in time order: DynaTok's paper setting
                             (it widens the time gaps the model learns to bridge).
      copies=p               with probability p the window is instead S copies of ONE
                             random frame: the same partial cloud (one draw, copied
                             exactly) and that frame's GT in every slot. That is what
                             DynaTok's "current" context ablation feeds at evaluation, so a
                             model trained with p > 0 has seen such windows (default 0: never;
                             then no extra random number is drawn, so the RNG stream and
                             hence a seeded run are exactly as before).

    foreground_only=True keeps only the objects that are not background (floor, walls:
    `object_background`), in the partial clouds and the GT samples alike: the "Foreground"
    setting of scene-level evaluations (DynaTok's Kubric table); False is "FG+BG".
    """

    def __init__(self, folder, split: str | None = None, frames: int | None = 8, points: int = 2048,
                 surface_points: int | None = 2048, train: bool = True, cache: bool = True,
                 kinds: list[str] | None = None, foreground_only: bool = False,
                 windows: str = "consecutive", copies: float = 0.0):
        if windows not in WINDOWS:
            raise ValueError(f"windows must be one of {WINDOWS}, got {windows!r}")
        if isinstance(copies, bool) or not isinstance(copies, (int, float)) or not 0.0 <= copies <= 1.0:
            raise ValueError(f"copies must be a probability in [0, 1], got {copies!r}")
        self.windows, self.copies = windows, float(copies)
        self.folder = Path(folder)
        self.foreground_only = bool(foreground_only)
        self.manifest = read_manifest(folder)
        entries = self.manifest["sequences"]
        if split is not None:
            entries = [e for e in entries if e["split"] == split]
        if kinds is not None:
            entries = [e for e in entries if e.get("kind") in kinds]
        if not entries:
            have = sorted({e["split"] for e in self.manifest["sequences"]})
            raise ValueError(f"{folder}: no sequences for split={split!r} kinds={kinds} "
                             f"(splits here: {have})")
        if frames is not None and frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        self.entries, self.S, self.N, self.Ns = entries, frames, points, surface_points
        self.train, self.cache = train, cache
        self._cache: dict[int, Sequence4D] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def sequence(self, i: int) -> Sequence4D:
        """The whole `Sequence4D` behind item i, read from disk."""
        seq = Sequence4D.load(self.folder / self.entries[i]["file"])
        if seq.partial_points is None:
            raise FormatError(f"{self.entries[i]['file']}: has no partial_points to train on")
        return seq

    def _points_of(self, i: int) -> Sequence4D:
        """Item i's sequence with only the fields items use; cached when cache=True (the
        images dominate a file, so the cache holds a few times less than the files)."""
        if i in self._cache:
            return self._cache[i]
        full = self.sequence(i)
        seq = Sequence4D(times=full.times, partial_points=full.partial_points,
                         surface_points=full.surface_points, surface_normals=full.surface_normals,
                         surface_visible=full.surface_visible, meta=full.meta)
        if self.foreground_only:
            seq = self._foreground(full, seq, i)
        if self.cache:
            self._cache[i] = seq
        return seq

    def _foreground(self, full: Sequence4D, seq: Sequence4D, i: int) -> Sequence4D:
        name = self.entries[i]["file"]
        if full.object_background is None or full.partial_instance is None or full.surface_instance is None:
            raise FormatError(f"{name}: foreground_only needs object_background, partial_instance and "
                              "surface_instance (a scene from the generator or the Kubric converter has them)")
        fg_objects = np.flatnonzero(~full.object_background)
        keep = [np.isin(inst, fg_objects) for inst in full.partial_instance]
        empty = [t for t, k in enumerate(keep) if not k.any()]
        if empty:
            raise FormatError(f"{name}: frames {empty} see no foreground object; foreground_only cannot "
                              "build a partial cloud for them")
        cols = np.isin(full.surface_instance, fg_objects)
        if not cols.any():
            raise FormatError(f"{name}: no GT surface sample lies on a foreground object")
        pick = (lambda a: None if a is None else a[:, cols])
        return Sequence4D(times=seq.times, partial_points=[p[k] for p, k in zip(full.partial_points, keep)],
                          surface_points=pick(seq.surface_points), surface_normals=pick(seq.surface_normals),
                          surface_visible=pick(seq.surface_visible), meta=seq.meta)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        seq = self._points_of(i)
        T = seq.num_frames
        S = T if self.S is None else self.S
        if S > T:
            raise ValueError(f"{self.entries[i]['file']}: {T} frames, fewer than the window of {S}")
        # Evaluation draws are fixed per sequence; training draws come from torch's global RNG.
        gen = None if self.train else torch.Generator().manual_seed(1000003 * i + 17)
        # copies == 0 draws nothing here, so default training consumes the RNG as it always did
        copied = self.train and self.copies > 0 and float(torch.rand(())) < self.copies
        if copied:                                        # S copies of one frame
            frames = torch.full((S,), int(torch.randint(0, T, (1,))))
        elif self.train and self.windows == "random":     # S distinct frames, in time order
            frames = torch.randperm(T)[:S].sort().values
        else:
            start = int(torch.randint(0, T - S + 1, (1,), generator=gen)) if self.train else 0
            frames = torch.arange(start, start + S)
        if copied:   # one draw copied exactly, as evaluate's "current" context feeds frame s
            partial = _subsample(torch.from_numpy(seq.partial_points[int(frames[0])]), self.N, gen)
            partial = partial[None].repeat(S, 1, 1)
        else:
            partial = torch.stack([_subsample(torch.from_numpy(seq.partial_points[t]), self.N, gen)
                                   for t in frames.tolist()])                      # (S, N, 3)
        out = {"partial": partial, "frames": frames,
               "times": torch.from_numpy(seq.times[frames.numpy()]).float(), "index": torch.tensor(i)}
        if seq.surface_points is not None:
            n_all = seq.surface_points.shape[1]
            if self.Ns is None or (self.Ns >= n_all and not self.train):
                sel = torch.arange(n_all)                 # evaluation scores every sample there is
            elif self.Ns > n_all:                         # training batches need Ns rows: repeat some
                sel = torch.cat([torch.randperm(n_all), torch.randint(0, n_all, (self.Ns - n_all,))])
            else:
                sel = torch.randperm(n_all, generator=gen)[: self.Ns]                # same rows every frame
            f = frames.numpy()[:, None]
            out["surface_rows"] = sel.long()
            out["surface"] = torch.from_numpy(seq.surface_points[f, sel.numpy()])
            if seq.surface_normals is not None:
                out["surface_normals"] = torch.from_numpy(seq.surface_normals[f, sel.numpy()])
            if seq.surface_visible is not None:
                out["visible"] = torch.from_numpy(seq.surface_visible[f, sel.numpy()])
        return out


    def surface_pool(self, i: int, frames) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every stored GT surface sample of sequence i at `frames` (S,): points (S, M, 3)
        and normals (S, M, 3) (None if the sequence has none), M = all stored samples
        (after foreground_only). Item i's `surface` is pool[:, item["surface_rows"]], so an
        evaluation can draw a second GT sample from the other rows (DynaTok's floor)."""
        seq = self._points_of(i)
        if seq.surface_points is None:
            raise FormatError(f"{self.entries[i]['file']}: has no surface_points")
        f = torch.as_tensor(frames).long().numpy()
        if f.ndim != 1 or (f < 0).any() or (f >= seq.num_frames).any():
            raise ValueError(f"frames must be (S,) indices in [0, {seq.num_frames}), got {f.tolist()}")
        normals = None if seq.surface_normals is None else torch.from_numpy(seq.surface_normals[f])
        return torch.from_numpy(seq.surface_points[f]), normals


def _subsample(points: torch.Tensor, n: int, gen) -> torch.Tensor:
    """n rows of `points` (M, 3): a random subset, or all plus random repeats when M < n."""
    m = len(points)
    if m == 0:
        raise FormatError("a frame with no points cannot be subsampled")
    if m >= n:
        idx = torch.randperm(m, generator=gen)[:n]
    else:
        idx = torch.cat([torch.randperm(m, generator=gen), torch.randint(0, m, (n - m,), generator=gen)])
    return points[idx]

"""The sanity check every trainer runs first: DynaTok can overfit ONE sequence until its
completions are about as sharp as the GT floor. If it could not, blur at any scale would be a
defect of the model or the training setup, not of the budget.

Floor: half of the frame's GT samples scored against the other half (the same number of
points as the prediction, scored the same way). Target: Acc and Comp within 1.5x of it.
The smoke config at a higher learning rate (3e-3) so that the check fits in about half a minute.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fourdlib.data.synthetic import generate_dataset
from fourdlib.metrics import accuracy, completeness
from fourdlib.models.dynatok import CONFIGS, DynaTok, loss, make_dataset, reconstruct
from fourdlib.train import train


@pytest.mark.slow
def test_dynatok_overfits_one_sequence_to_near_the_gt_floor(tmp_path):
    folder = tmp_path / "one"
    generate_dataset(folder, "primitives", 1, num_frames=4, seed=3, test_frac=0.0, progress=False, workers=1,
                     image_size=(64, 64), n_surface=1024, maker_options={"motion": 0.0, "deform": 0.0})
    cfg = dataclasses.replace(CONFIGS["smoke"], steps=800, lr=3e-3, train_frames=4, eval_frames=4)
    torch.manual_seed(0)
    model = DynaTok(cfg)
    data = torch.utils.data.ConcatDataset([make_dataset(cfg, folder, None, train=True)] * 8)  # one sequence
    train(model, loss, data, cfg.train_config(seed=0, device="cpu", progress=False, warmup_steps=10, log_every=100))

    item = make_dataset(cfg, folder, None, train=False)[0]
    partial, gt = item["partial"][None], item["surface"]          # (1, S, N, 3), (S, P, 3)
    half = gt.shape[1] // 2
    pred = reconstruct(model.eval(), partial, half, 8, generator=torch.Generator().manual_seed(0))[0]
    a, b = gt[:, :half], gt[:, half:]

    def mean(metric, x, y):
        return float(np.mean([metric(x[s], y[s]) for s in range(gt.shape[0])]))

    acc, comp = mean(accuracy, pred, b), mean(completeness, pred, b)
    floor_acc, floor_comp = mean(accuracy, a, b), mean(completeness, a, b)
    assert acc < 1.5 * floor_acc and comp < 1.5 * floor_comp, (
        f"Acc {acc:.4f} / Comp {comp:.4f} against the floor {floor_acc:.4f} / {floor_comp:.4f}")
    # and untrained it is far from there: the check measures training, not the metric
    untrained = reconstruct(DynaTok(cfg).eval(), partial, half, 8, generator=torch.Generator().manual_seed(0))[0]
    assert mean(accuracy, untrained, b) > 2 * floor_acc

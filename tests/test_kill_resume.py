"""kill -9 at random moments of a smoke DynaTok training (`fourd train`, a checkpoint every 2
steps, so kills land in steps and in checkpoint writes alike): after every kill the run's
files load, and the run finally resumed to the end has exactly the weights of a run never
stopped. CI kills twice; FOURD_KILLS=20 runs the full check."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fourdlib.train import load_checkpoint

KILLS = int(os.environ.get("FOURD_KILLS", "2"))
STEPS = 40 * KILLS  # enough work left that every kill lands before the run ends


def _train(name: str, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "fourdlib.cli", "train", "dynatok", "--scale", "smoke", "--name", name,
           "--steps", str(STEPS), "--ckpt-every", "2", "--device", "cpu"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_random_kills_leave_a_loadable_run_that_resumes_exactly(tmp_path):
    env = {**os.environ, "FOURD_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    ref = _train("reference", env)           # also generates the smoke data, once
    assert ref.wait(timeout=600) == 0, ref.stderr.read()
    folder = tmp_path / "cache" / "checkpoints" / "dynatok"
    reference = load_checkpoint(folder / "reference.pt")

    rng = random.Random(0)
    kills = 0
    while True:
        proc = _train("killed", env)
        if kills < KILLS:
            time.sleep(rng.uniform(2.0, 9.0))  # start-up (imports) is ~3 s: kills hit everything after it
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                for path in (folder / "killed.resume.pt", folder / "killed.pt"):
                    if path.exists():
                        load_checkpoint(path)  # raises CheckpointError on a torn write
                continue
        assert proc.wait(timeout=600) == 0, proc.stderr.read()
        break
    assert kills == KILLS
    final = load_checkpoint(folder / "killed.pt")
    assert final["step"] == STEPS and final["run"] == reference["run"]
    for k, v in reference["model"].items():
        assert torch.equal(v, final["model"][k]), k
    assert not (folder / "killed.resume.pt").exists()
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))  # no torn temporaries left

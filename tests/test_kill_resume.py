"""kill -9 at random moments of a smoke DynaTok training (`fourd train`, a checkpoint every 2
steps; each kill lands a random number of checkpoints into the remaining run plus a random
fraction of a step, so kills land in steps and in checkpoint writes alike): after every kill the run's
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
STEPS = 20 * KILLS + 20  # enough checkpoints left for every kill to land before the run ends


def _train(name: str, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "fourdlib.cli", "train", "dynatok", "--scale", "smoke", "--dataset", "static", "--name", name,
           "--steps", str(STEPS), "--ckpt-every", "2", "--device", "cpu"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _signature(path: Path):
    """Changes whenever the checkpoint is replaced (a new file under the same name)."""
    try:
        st = path.stat()
        return st.st_ino, st.st_mtime_ns
    except FileNotFoundError:
        return None


def _kill_after(proc: subprocess.Popen, path: Path, writes: int, jitter: float) -> bool:
    """SIGKILL `proc` `jitter` seconds after it has replaced `path` `writes` times (so the kill
    lands after real progress, in a step or in the next write); False if it ended first."""
    seen, last = 0, _signature(path)
    while proc.poll() is None:
        now = _signature(path)
        if now != last:
            seen += now is not None  # a new file; its removal at the very end is not a write
            last = now
        if seen >= writes:
            time.sleep(jitter)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    return False


@pytest.mark.slow
def test_random_kills_leave_a_loadable_run_that_resumes_exactly(tmp_path):
    env = {**os.environ, "FOURD_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    ref = _train("reference", env)           # also generates the smoke data, once
    assert ref.wait(timeout=600) == 0, ref.stderr.read()
    folder = tmp_path / "cache" / "checkpoints" / "dynatok"
    reference = load_checkpoint(folder / "reference.pt")
    resume = folder / "killed.resume.pt"

    rng = random.Random(0)
    kills = 0
    while kills < KILLS:
        step = load_checkpoint(resume)["step"] if resume.exists() else 0
        writes_left = (STEPS - step) // 2                 # a checkpoint every 2 steps
        proc = _train("killed", env)
        # a random point of this kill's share of the remaining run, plus up to 2 steps' time
        share = max(1, (writes_left - 3) // (KILLS - kills))
        assert _kill_after(proc, resume, rng.randint(1, share), rng.uniform(0, 0.1)), \
            f"the run ended before kill {kills + 1}: {proc.stderr.read()}"
        kills += 1
        for path in (resume, folder / "killed.pt"):
            if path.exists():
                load_checkpoint(path)  # raises CheckpointError on a torn write
    proc = _train("killed", env)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    assert kills == KILLS
    final = load_checkpoint(folder / "killed.pt")
    assert final["step"] == STEPS and final["run"] == reference["run"]
    for k, v in reference["model"].items():
        assert torch.equal(v, final["model"][k]), k
    assert not (folder / "killed.resume.pt").exists()
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))  # no torn temporaries left

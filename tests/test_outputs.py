"""Output folders never cost a user a file (fourdlib.outputs), and `fourd infer dynatok` /
`fourd complete` check every argument and the output folder before doing any work."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from fourdlib.cli import main as fourd
from fourdlib.models.dynatok import CONFIGS, DynaTok, save_model
from fourdlib.outputs import MANIFEST, OutputError, check_output_folder, output_folder


def _tree(folder):
    """{relative path: sha256} of every file under folder (what must not change)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- the rules
def test_output_folder_refuses_inputs_files_and_foreign_folders(tmp_path):
    data = tmp_path / "scans" / "frames"
    data.mkdir(parents=True)
    (data / "a.npy").write_bytes(b"x")
    for out, message in [(tmp_path / "scans", "holds the input"), (data, "holds the input"),
                         (data / "sub", "inside the input folder"), (data / "a.npy", "is a file")]:
        with pytest.raises(OutputError, match=message):
            check_output_folder(out, [data])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        check_output_folder(mine)
    with pytest.raises(OutputError, match="did not write"):  # force never deletes unrecorded files
        check_output_folder(mine, force=True)
    assert (mine / "notes.txt").read_text() == "mine"


def test_force_replaces_exactly_the_earlier_outputs(tmp_path):
    out = tmp_path / "out"
    with output_folder(out) as tmp:
        for i in range(5):
            (tmp / "frames").mkdir(exist_ok=True)
            (tmp / "frames" / f"f{i}.txt").write_text(str(i))
    assert json.loads((out / MANIFEST).read_text())["files"] == [f"frames/f{i}.txt" for i in range(5)]
    with pytest.raises(OutputError, match="not empty"):
        with output_folder(out) as tmp:
            pass
    with output_folder(out, force=True) as tmp:  # a smaller run: no stale frames 2..4 stay behind
        (tmp / "frames").mkdir()
        for i in range(2):
            (tmp / "frames" / f"f{i}.txt").write_text(f"new {i}")
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["f0.txt", "f1.txt"]
    assert (out / "frames" / "f1.txt").read_text() == "new 1"


def test_a_failed_run_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "out"
    with output_folder(out) as tmp:
        (tmp / "a.txt").write_text("first")
    before = _tree(out)
    with pytest.raises(RuntimeError):
        with output_folder(out, force=True) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("inference failed")
    assert _tree(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left behind


def test_a_hand_edited_manifest_cannot_point_outside(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({"files": ["../victim.txt"]}))
    with output_folder(out, force=True) as tmp:
        (tmp / "b.txt").write_text("b")
    assert victim.read_text() == "keep me"


# ----------------------------------------------------------------------------- fourd infer / complete
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(tmp_path_factory.mktemp("ckpt") / "dynatok.pt", DynaTok(CONFIGS["smoke"]))


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "scan" / "frames"
    folder.mkdir(parents=True)
    g = np.random.default_rng(0)
    for t in range(3):
        np.save(folder / f"frame_{t}.npy", g.normal(size=(60, 3)) * 0.3)
    return folder


def _run(args, capsys):
    code = fourd(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--points", "0"], "--points must be at least 1, got 0"),
    (["--points", "-5"], "--points must be at least 1, got -5"),
    (["--steps", "two"], "--steps must be a whole number"),
    (["--window", "1"], "--window must be at least 2, got 1"),
    (["--device", "tpu"], "is not a device"),
    (["--device", "mps"], "fourdlib runs on cpu or cuda"),
    (["--device", "gpu0"], "is not a device"),
])
def test_bad_arguments_are_argparse_errors(frames, checkpoint, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    try:
        code, err = _run(["infer", "dynatok", str(frames), "--checkpoint", str(checkpoint), "--out", str(out),
                          "--points", "8", "--steps", "1", *extra], capsys)
    except SystemExit as e:  # argparse's own exit (code 2), with the message on stderr
        code, err = e.code, capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    if message:
        assert message in err
    assert not out.exists()  # refused before any work: nothing written


def test_outputs_never_overwrite_inputs_or_user_files(frames, checkpoint, tmp_path, capsys):
    before = _tree(tmp_path / "scan")
    common = ["--checkpoint", str(checkpoint), "--points", "8", "--steps", "1", "--no-html"]
    for out in (frames.parent, frames, frames / "new"):  # holds the input, is it, lies inside it
        code, err = _run(["complete", str(frames), "--out", str(out), *common], capsys)
        assert code == 2 and ("holds the input" in err or "inside the input" in err), err
    code, err = _run(["complete", str(frames), "--out", str(checkpoint), *common], capsys)
    assert code == 2 and "is a file" in err
    assert _tree(tmp_path / "scan") == before

    out = tmp_path / "completed"
    assert _run(["complete", str(frames), "--out", str(out), *common], capsys)[0] == 0
    first = _tree(out)
    code, err = _run(["complete", str(frames), "--out", str(out), *common], capsys)
    assert code == 2 and "--force" in err and _tree(out) == first  # no silent overwrite
    (frames / "frame_2.npy").unlink()  # a shorter sequence, then --force: no stale frame files remain
    assert _run(["complete", str(frames), "--out", str(out), "--force", *common], capsys)[0] == 0
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["frame_0000.ply", "frame_0001.ply"]
    (out / "mine.txt").write_text("a note of mine")
    code, err = _run(["complete", str(frames), "--out", str(out), "--force", *common], capsys)
    assert code == 2 and "did not write" in err and (out / "mine.txt").exists()


def test_millimetres_and_garbage_files_are_named(frames, checkpoint, tmp_path, capsys):
    common = ["--checkpoint", str(checkpoint), "--points", "8", "--steps", "1", "--no-html"]
    mm = tmp_path / "mm"
    mm.mkdir()
    for t in range(2):
        np.save(mm / f"f{t}.npy", np.random.default_rng(t).normal(size=(50, 3)) * 300.0)  # ~1 m in mm
    code, err = _run(["complete", str(mm), "--out", str(tmp_path / "o1"), *common], capsys)
    assert code == 2 and "millimetres" in err
    assert _run(["complete", str(mm), "--out", str(tmp_path / "o2"), "--no-units-check", *common], capsys)[0] == 0
    from fourdlib.models.dynatok import complete_sequence  # the library call checks too, not only the CLI
    with pytest.raises(ValueError, match="millimetres"):
        complete_sequence(mm, checkpoint, num_points=8, steps=1)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2\n")
    (junk / "b.ply").write_bytes(b"\x00garbage")
    code, err = _run(["complete", str(junk), "--out", str(tmp_path / "o3"), *common], capsys)
    assert code == 2 and "a.ply" in err and "Traceback" not in err


def test_fourd_run_refuses_an_unknown_scale_before_running(tmp_path, capsys):
    """`-p scale <typo>` used to run until a cell failed (or silently at a default size)."""
    out = tmp_path / "run"
    assert fourd(["run", "00_metrics", "-p", "scale", "tinyy", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'tinyy' is not a scale" in err and "smoke, tiny, small, full" in err and not out.exists()

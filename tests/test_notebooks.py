"""Every notebook runs top to bottom with papermill at the smoke scale, and the numbers it
records make sense. A new notebook needs an entry in CHECKS: what its record must show."""
from pathlib import Path

import pytest

from fourdlib.course import run_one
from fourdlib.repro import load_records

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def check_4d_data(m):
    c = m["creature"]
    # One frame sees clearly less than the union of frames; the union sees most of it.
    assert c["visible_per_frame"] < 0.75 * c["visible_union"]
    assert c["visible_union"] > 0.7
    total = c["visible_per_frame"] + c["hidden_seen_elsewhere"] + c["never_seen"]
    assert abs(total - 1) < 1e-6  # the three regions partition the surface
    for kind in ("primitives", "scene", "compositional (mixed)"):
        assert 0 < m[kind]["visible_per_frame"] < m[kind]["visible_union"] <= 1


def check_metrics(m):
    cap = m["sphere_cap"]
    assert cap["completeness"] > 2 * cap["accuracy"]  # the missing cap only shows in completeness
    cd = m["chamfer"]
    assert cd["L1, sum of halves (COM4D)"] == pytest.approx(2 * cd["L1, mean of halves (OccNet, DynaTok)"])
    nc = m["normal_consistency"]
    assert nc["exact"] > 0.95 and nc["half flipped"] == pytest.approx(nc["exact"], abs=1e-6)
    assert nc["tilted"] < nc["exact"] - 0.05
    iou = m["iou_two_balls"]
    assert iou["voxel IoU"] == pytest.approx(iou["exact IoU"], abs=0.05)
    img = m["images"]
    assert 0 < img["blurred"]["SSIM"] < 1 and 0 < img["noisy"]["SSIM"] < 1
    flow = m["scene_flow"]
    assert flow["1 cm noise everywhere"]["epe3d"] < flow["30 cm error on 10 %"]["epe3d"]
    assert flow["1 cm noise everywhere"]["acc_strict"] > flow["30 cm error on 10 %"]["acc_strict"]
    depth = m["depth"]
    assert depth["median-aligned"]["abs_rel"] < depth["metric (no alignment)"]["abs_rel"]


def check_dynatok_tokenization(m):
    assert m["fps_matches_library"] == 1.0  # FPS from scratch picks the library's anchors
    assert m["min_gap_fps"] > m["min_gap_random"]  # FPS spreads its picks
    assert m["fit_loss_fourier"] < m["fit_loss_raw"]  # Fourier features fit the sharp pattern better
    assert m["max_change_shuffled"] < 1e-4 and m["max_change_doubled"] < 1e-4


CHECKS = {"00_4d_data": check_4d_data, "00_metrics": check_metrics,
          "01_dynatok_tokenization": check_dynatok_tokenization}


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_smoke_scale(notebook, tmp_path):
    assert notebook.stem in CHECKS, f"add a record check for {notebook.name} to CHECKS"
    result = run_one(notebook, {"scale": "smoke"}, out=tmp_path, progress=False)
    assert result.ok, [(r.notebook, r.status, r.message) for r in result.runs]
    records = load_records(tmp_path)
    mine = records[records.notebook == notebook.stem]
    assert len(mine) >= 1, f"{notebook.name} wrote no record"
    assert (mine.scale == "smoke").all()
    import json
    for path in mine.path:
        CHECKS[notebook.stem](json.loads(Path(path).read_text())["metrics"])
    assert (tmp_path / f"{notebook.stem}.html").exists()  # a page a person can open

"""A notebook run as a person runs it: JupyterLab in a browser, Run All Cells.

Starts ``jupyter lab`` (this Python's, on a free local port, with a token, its config,
data and runtime folders in a temporary folder) on the repository's notebooks folder
with FOURD_SCALE=smoke and FOURD_CACHE=<tmp>, opens NOTEBOOK in headless Chromium
(Playwright driving the system Chromium, WebGL drawn by SwiftShader), runs all cells
through JupyterLab's own command and checks that

* every code cell ran (an execution count each), the kernel went idle, and no output is
  an error, a Traceback on stderr, or a widget that failed to display;
* each k3d view drew its data: a screenshot of its canvas shows the points' colours
  (notebook 01's views are red anchors on grey, and an inferno colour map; the grid,
  axes and text are grey, so coloured pixels mean the points were drawn);
* the run left git clean: no ``outputs/`` or ``records/`` beside the notebook, no new
  untracked file under notebooks/ (git status), the notebook file still without outputs
  (autosave is switched off for the test, as a person may save or not), and the record went to
  ``fourdlib.repro.interactive_dir()`` (runs/interactive/, git-ignored) at the smoke scale.

Until the notebook's parameters cell reads ``FOURD_SCALE``, the test runs a copy of the
notebooks folder whose parameters cell it patches, and checks the copy stays clean.
Skipped without Playwright (``pip install -e ".[dev]"``) or Chromium (``apt-get install
chromium``); no ``playwright install`` is needed.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fourdlib.repro import records as rec_mod
from fourdlib.viz import find_chromium

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "01_dynatok_tokenization.ipynb"
SCALE = "smoke"
SERVER_TIMEOUT_S = 120    # jupyter lab answering its API (about 5 s on an idle machine)
OPEN_TIMEOUT_S = 120      # the notebook open in the page with its kernel
RUN_TIMEOUT_S = 300       # Run All Cells done and the kernel idle
DRAW_TIMEOUT_S = 30       # a k3d canvas showing its points
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox"]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# JupyterLab user settings for the test: no autosave (the test must not write the notebook),
# every cell in the DOM (no windowing), no news or update checks (offline).
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

# The open notebook's state, read from JupyterLab's model (not from what the page shows).
STATE_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  const cells = w.content.model.toJSON().cells.filter(c => c.cell_type === 'code');
  return {
    done: window.__fourdRunAll === undefined ? null : window.__fourdRunAll,
    status: kernel ? kernel.status : 'none',
    counts: cells.map(c => c.execution_count),
    errors: cells.flatMap((c, i) => c.outputs.filter(o => o.output_type === 'error')
                                         .map(o => `code cell ${i}: ${o.ename}: ${o.evalue}`)),
    widgets: cells.flatMap(c => c.outputs.filter(o => o.data && o.data['%s'])).length,
  };
}""" % WIDGET_MIME


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` (field 22 of /proc/<pid>/stat), None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of every descendant of ``pid`` (the kernel runs in its own session)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        start = _proc_start(p)
        if start is not None:
            found.append((p, start))
        todo.extend(children.get(p, []))
    return found


def _git_untracked(*paths: str) -> set[str] | None:
    """The untracked, not ignored entries under ``paths`` as plain ``git status`` shows them
    (an untracked folder is one entry); None without git. Changes to tracked files are not
    looked at: others may be editing notebooks while the test runs (the opened notebook is
    checked on its own)."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=normal", "--", *paths],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return {line for line in out.stdout.splitlines() if line.startswith("??")} if out.returncode == 0 else None


def _has_outputs(notebook: Path) -> bool:
    """Whether a notebook file holds outputs or execution counts (what a save after a run adds)."""
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    return any(c.get("outputs") or c.get("execution_count") is not None for c in cells)


def _listing(folder: Path) -> set[str]:
    """The names in ``folder`` except JupyterLab's own .ipynb_checkpoints (git-ignored). Only the
    top level: a run writing beside the notebook makes new names there (outputs/, records/),
    while someone editing the course at the same time may add files in its subfolders."""
    return {p.name for p in folder.iterdir() if p.name != ".ipynb_checkpoints"}


def _reads_scale_from_env(notebook: Path) -> bool:
    nb = json.loads(notebook.read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    return "FOURD_SCALE" in "".join(first["source"])


def _copy_with_env_scale(src: Path, dst: Path) -> Path:
    """A copy of the notebooks folder whose NOTEBOOK takes its scale from $FOURD_SCALE."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "outputs", "records"))
    path = dst / NOTEBOOK
    nb = json.loads(path.read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    source, n = re.subn(r'^scale = "(\w+)"', r'import os\nscale = os.environ.get("FOURD_SCALE", "\1")',
                        "".join(first["source"]), flags=re.M)
    assert n == 1, f"{NOTEBOOK}: no `scale = \"...\"` line in the parameters cell to patch"
    first["source"] = source
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return dst


@pytest.fixture
def playwright_chromium():
    """(sync_playwright, path of Chromium), or skip saying what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip('playwright is not installed (pip install -e ".[dev]")')
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium not installed (Debian: apt-get install chromium)")
    return sync_playwright, chromium


@pytest.fixture
def lab(tmp_path):
    """Start JupyterLab on the notebooks folder; yield a function that returns
    (base url, token, root folder, log path) once it answers. Always stopped, with its kernels."""
    state: dict = {}

    def start(root: Path):
        token = secrets.token_hex(16)
        port = _free_port()
        cfg = tmp_path / "jupyter-config"
        for plugin, value in LAB_SETTINGS.items():
            f = cfg / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(value))
        env = {k: v for k, v in os.environ.items()
               if k not in (rec_mod.RECORD_DIR_ENV, rec_mod.NOTEBOOK_ENV, rec_mod.OUTPUT_DIR_ENV, rec_mod.STARTED_ENV,
                            "JUPYTER_PATH", "JPY_SESSION_NAME")}
        env.update(FOURD_SCALE=SCALE, FOURD_CACHE=str(tmp_path / "cache"), JUPYTER_CONFIG_DIR=str(cfg),
                   JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"), JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
                   PYTHONUNBUFFERED="1")
        log_path = tmp_path / "jupyter-lab.log"
        log = open(log_path, "w")
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--LabApp.expose_app_in_browser=True"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        state.update(proc=proc, log=log, base=base, token=token)
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited ({proc.returncode}); its log ends:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer within {SERVER_TIMEOUT_S} s; its log ends:\n"
                                f"{log_path.read_text()[-3000:]}")
                time.sleep(0.3)
        return base, token, log_path

    yield start

    proc = state.get("proc")
    if proc is None:
        return
    kids = _descendants(proc.pid)  # the kernels, in sessions of their own
    try:  # the server's own shutdown ends its kernels too
        req = urllib.request.Request(f"{state['base']}/api/shutdown?token={state['token']}", method="POST")
        urllib.request.urlopen(req, timeout=10).close()
        proc.wait(timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        pass
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 30)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
    for pid, start in kids:  # whatever outlived the server, if it is still the same process
        if _proc_start(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    state["log"].close()


def _coloured_fraction(png: bytes) -> float:
    """Fraction of clearly coloured pixels (not white, grey or black) in the middle of a
    k3d canvas: rows 20-80 %, columns 10-70 % (the K3D panel sits top right, a colour
    legend on the left)."""
    import imageio.v3 as iio
    img = iio.imread(png)[..., :3].astype(int)
    h, w = img.shape[:2]
    mid = img[int(0.2 * h):int(0.8 * h), int(0.1 * w):int(0.7 * w)]
    return float(((mid.max(-1) - mid.min(-1)) > 60).mean())


def test_notebook_runs_in_jupyterlab_and_leaves_git_clean(playwright_chromium, lab, tmp_path):
    sync_playwright, chromium = playwright_chromium
    notebooks = REPO / "notebooks"
    if _reads_scale_from_env(notebooks / NOTEBOOK):
        root = notebooks
    else:  # the notebooks do not read FOURD_SCALE yet: a patched copy
        root = _copy_with_env_scale(notebooks, tmp_path / "notebooks")
    assert not _has_outputs(root / NOTEBOOK), f"{NOTEBOOK} is committed with outputs"
    files_before = _listing(root)
    git_before = _git_untracked("notebooks", "outputs", "records")
    record = rec_mod.interactive_dir() / NOTEBOOK.replace(".ipynb", rec_mod.RECORD_SUFFIX)
    started = time.time()

    page_errors: list[str] = []
    times = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            base, token, log_path = lab(root)
            times["server up"] = time.time() - started
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("console", lambda m: m.type == "error" and page_errors.append(m.text))
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            page.wait_for_function(
                "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                " return !!(w && w.content && w.content.model && w.sessionContext); }",
                timeout=OPEN_TIMEOUT_S * 1000)
            opened = page.evaluate("""async () => { const w = window.jupyterapp.shell.currentWidget;
                await w.context.ready; await w.sessionContext.ready; return w.context.path; }""")
            assert opened == NOTEBOOK
            times["notebook open"] = time.time() - started

            # Run > Run All Cells, through JupyterLab's command (what the menu item calls)
            page.evaluate("""() => { window.jupyterapp.commands.execute('notebook:run-all-cells')
                .then(ok => { window.__fourdRunAll = String(ok); }, e => { window.__fourdRunAll = 'failed: ' + e; }); }""")
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while True:
                s = page.evaluate(STATE_JS)
                if s["errors"] or (s["done"] is not None and s["status"] == "idle"):
                    break
                assert time.monotonic() < deadline, (
                    f"Run All Cells not done within {RUN_TIMEOUT_S} s: kernel {s['status']}, execution counts "
                    f"{s['counts']}; page errors: {page_errors[-5:]}; server log: {log_path}")
                time.sleep(0.5)
            times["cells run"] = time.time() - started
            assert not s["errors"], f"{NOTEBOOK} failed in JupyterLab: {s['errors']}"
            assert s["done"] == "true", f"Run All Cells ended with {s['done']}"
            assert all(c is not None for c in s["counts"]), f"cells that did not run: execution counts {s['counts']}"

            # nothing on the page reads as an error
            stderr = page.locator('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
            tracebacks = [t for t in stderr if "Traceback" in t]
            assert not tracebacks, f"error output on stderr: {[t[-500:] for t in tracebacks]}"
            outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
            broken = [t for t in outputs if "Error displaying widget" in t or "Model not found" in t]
            assert not broken, f"widgets that did not display: {broken}"

            # every k3d view drew its points
            canvases = page.locator(".jp-OutputArea-output .k3d-target canvas")
            assert s["widgets"] >= 1 and canvases.count() == s["widgets"], (
                f"{s['widgets']} widget outputs but {canvases.count()} k3d canvases on the page; "
                f"page errors: {page_errors[-5:]}")
            for i in range(canvases.count()):
                canvas = canvases.nth(i)
                canvas.scroll_into_view_if_needed()
                shot = tmp_path / f"k3d-view-{i}.png"
                draw_deadline = time.monotonic() + DRAW_TIMEOUT_S
                while True:
                    png = canvas.screenshot(path=str(shot))
                    fraction = _coloured_fraction(png)
                    if fraction >= 0.005 or time.monotonic() > draw_deadline:
                        break
                    time.sleep(1)
                assert fraction >= 0.005, (f"k3d view {i} shows no points ({fraction:.2%} coloured pixels in "
                                           f"the middle; see {shot}); page errors: {page_errors[-5:]}")
            times["views checked"] = time.time() - started
        finally:
            browser.close()

    # the run left the repository as it was
    assert not _has_outputs(root / NOTEBOOK), f"JupyterLab saved {NOTEBOOK} with its outputs"
    new_files = sorted(_listing(root) - files_before)
    assert not new_files, f"the run wrote beside the notebook: {new_files}"
    git_after = _git_untracked("notebooks", "outputs", "records")
    if git_before is not None and git_after is not None:
        assert git_after <= git_before, f"git status after the run shows new files: {sorted(git_after - git_before)}"
    assert record.is_file() and record.stat().st_mtime >= started - 1, f"no new record at {record}"
    rec = rec_mod.read_record(record)
    assert rec["scale"] == SCALE and rec["notebook"] == NOTEBOOK.removesuffix(".ipynb"), rec
    print(f"{NOTEBOOK} in JupyterLab at scale {SCALE}, seconds since start: "
          + ", ".join(f"{k} {v:.0f}" for k, v in times.items()) + f"; page errors: {page_errors[-5:] or 'none'}")

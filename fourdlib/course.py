"""The course runner: execute the notebook series headless and summarise it.

``fourd course --scale tiny`` (see fourdlib/cli.py) calls :func:`run_course`, which

1. finds ``notebooks/[0-9][0-9]_*.ipynb`` (in name order; ``--only`` filters),
2. runs each with papermill in a kernel of *this* Python, injecting only the
   parameters (scale, device, seed, ``-p`` extras) its ``parameters`` cell declares,
   with a per-notebook wall-clock limit (and optionally a per-cell one),
3. writes ``<run>/<notebook>.ipynb`` (executed), ``<run>/<notebook>.html`` (its view),
   and lets the notebook write ``<run>/<notebook>.record.json`` (fourdlib.repro.record)
   and views into ``<run>/<notebook>/`` (fourdlib.repro.output_dir),
4. collects every record into ``summary.csv`` (one row per record, with each
   notebook's status and time), ``metrics.csv`` (tidy) and ``index.html`` (status,
   links to every view, the summary, and "paper vs ours" for records that name a
   paper table), rewritten after each notebook so it can be opened mid-run,
5. prints the summary and, for a failure, ``FAILED: <notebook>, cell <i>: <error>``
   (``i`` counts all cells of the source notebook from 0, as nbformat does).

By default the series stops at the first failure (``keep_going=True`` runs the
rest); either way a failure makes the exit status non-zero.

The run folder (``--out``) is checked before anything runs (`check_run_dir`): it must be
new or empty, and outside the notebooks' folders; ``force=True`` (the CLI's ``--force``)
accepts a folder an earlier run wrote. A run is written into a temporary folder beside the
run folder and renamed into place when it ends (after a failure or Ctrl-C too). Each run
folder holds ``.fourd-run.json`` (RUN_MANIFEST), the list of what that run wrote; a forced
re-run deletes exactly those files and keeps every other file in the folder. Nothing is
ever deleted by name pattern.

Why a kernel of this Python: papermill starts the kernelspec called "python3",
which in a fresh environment may be some other interpreter (a user-level
kernelspec, JUPYTER_PATH). If it does not run ``sys.executable``, a private
kernelspec that does is put first on JUPYTER_PATH for the run.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fnmatch
import html
import json
import math
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .repro import records as _records

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
COURSE_PARAMETERS = ("scale", "device", "seed")
# Wall-clock limit per notebook (seconds) by scale; None = no limit. "tiny" is meant
# to take minutes on a laptop CPU; "small" about an hour on one GPU.
DEFAULT_TIMEOUT = {"smoke": 600, "tiny": 3600, "small": 4 * 3600, "full": None, None: 3600}  # tiny: a notebook may train two ~10-min models
ERROR_MARKER_TAG = "papermill-error-cell-tag"  # cells papermill adds to a failed notebook


class CourseError(Exception):
    """Bad input to the runner (no notebooks, unknown parameter, ...)."""


@dataclass
class NotebookRun:
    """What happened to one notebook."""

    source: Path
    status: str = "not run"  # ok | failed | timeout | interrupted | not run
    seconds: float | None = None
    parameters: dict = field(default_factory=dict)
    executed: Path | None = None
    html: Path | None = None
    cell: int | None = None  # failing cell: index in the source notebook, from 0
    cell_source: str = ""  # its first line
    exec_count: int | None = None  # its "In [n]" in the executed notebook
    error: str = ""
    views: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.source.stem

    def failure_message(self) -> str:
        where = f", cell {self.cell}" if self.cell is not None else ""
        return f"FAILED: {_show_path(self.source)}{where}: {self.error}"

    def failure_details(self) -> str:
        lines = [self.failure_message()]
        if self.cell_source:
            shown = f" (In [{self.exec_count}] in the executed notebook)" if self.exec_count else ""
            lines.append(f"  cell {self.cell}{shown} begins: {self.cell_source}")
        if self.executed is not None:
            lines.append(f"  executed notebook: {_show_path(self.executed)}"
                         + (f"  (view: {_show_path(self.html)})" if self.html else ""))
        return "\n".join(lines)


@dataclass
class CourseResult:
    run_dir: Path
    runs: list
    summary: pd.DataFrame
    index: Path

    @property
    def ok(self) -> bool:
        return all(r.status == "ok" for r in self.runs)

    @property
    def failures(self) -> list:
        return [r for r in self.runs if r.status not in ("ok", "not run")]


def _show_path(p: Path) -> str:
    """A path relative to the working directory when it is below it (shorter messages)."""
    try:
        return str(Path(p).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


# ----------------------------------------------------------------------------- finding notebooks

def find_notebooks_dir(notebooks: str | Path | None = None) -> Path:
    """``notebooks/`` of the fourdlib checkout (editable install), else of the working dir."""
    if notebooks is not None:
        path = Path(notebooks)
        if not path.is_dir():
            raise CourseError(f"notebooks folder {path} does not exist")
        return path.resolve()
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        if (root / "notebooks").is_dir():
            return (root / "notebooks").resolve()
    raise CourseError("no notebooks/ folder next to the fourdlib package or in the working "
                      "directory; pass --notebooks DIR")


def discover(notebooks_dir: Path, only=()) -> list[Path]:
    """The series ``NN_*.ipynb`` in order; ``only``: substrings or glob patterns of names."""
    found = sorted(Path(notebooks_dir).glob(NOTEBOOK_GLOB))
    if not found:
        raise CourseError(f"no notebooks matching {NOTEBOOK_GLOB} in {notebooks_dir}")
    if only:
        def wanted(p):
            return any(fnmatch.fnmatch(p.name, pat) if any(c in pat for c in "*?[") else pat in p.name
                       for pat in only)
        found = [p for p in found if wanted(p)]
        if not found:
            raise CourseError(f"no notebook in {notebooks_dir} matches --only {' '.join(only)}")
    return found


def resolve_notebook(arg: str | Path, notebooks_dir: str | Path | None = None) -> Path:
    """A notebook path, or a prefix/substring of a name in the notebooks folder ("03")."""
    path = Path(arg)
    if path.is_file():
        return path.resolve()
    folder = find_notebooks_dir(notebooks_dir)
    matches = [p for p in sorted(folder.glob("*.ipynb")) if p.name.startswith(str(arg))] or \
              [p for p in sorted(folder.glob("*.ipynb")) if str(arg) in p.name]
    if len(matches) != 1:
        names = ", ".join(p.name for p in matches) or "none"
        raise CourseError(f"{arg!r} is not a notebook file and matches {len(matches)} notebooks in "
                          f"{folder} ({names})")
    return matches[0]


def declared_parameters(notebook: Path) -> dict:
    """The names (and default source text) in the notebook's ``parameters`` cell."""
    import papermill

    try:
        params = papermill.inspect_notebook(str(notebook))
    except Exception as e:  # not JSON, not a notebook, ...
        raise CourseError(f"cannot read {notebook}: {type(e).__name__}: {e}") from e
    return {name: p["default"] for name, p in params.items()}


def parse_value(text: str):
    """A ``-p`` value as papermill's CLI reads it: int, float, bool, None, else the string."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


# ----------------------------------------------------------------------------- kernel

def _runs_this_python(argv: list) -> bool:
    """Does a kernelspec's argv start this interpreter? ("python"/"python3" is replaced
    by sys.executable in jupyter_client; an absolute path must be ours, unresolved, since a
    venv's python is a symlink to the base interpreter, which lacks the venv's packages)."""
    if not argv:
        return False
    exe = argv[0]
    v = sys.version_info
    if exe in ("python", f"python{v[0]}", f"python{v[0]}.{v[1]}"):
        return True
    return os.path.abspath(exe) == os.path.abspath(sys.executable)


@contextlib.contextmanager
def python_kernel():
    """Yield a kernel name whose kernel is this Python (see the module docstring)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    name = "python3"
    try:
        ok = _runs_this_python(KernelSpecManager().get_kernel_spec(name).argv)
    except NoSuchKernel:
        ok = False
    if ok:
        yield name
        return
    with tempfile.TemporaryDirectory(prefix="fourd-kernel-") as tmp:
        spec_dir = Path(tmp) / "kernels" / name
        spec_dir.mkdir(parents=True)
        spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (ipykernel)", "language": "python"}
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        with _environ(JUPYTER_PATH=os.pathsep.join(
                [tmp] + ([os.environ["JUPYTER_PATH"]] if os.environ.get("JUPYTER_PATH") else []))):
            yield name


@contextlib.contextmanager
def _environ(**values):
    """Set environment variables for the duration (the kernel inherits them)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------- one notebook

def execute_notebook(source: Path, run_dir: Path, parameters: dict, *, kernel_name: str = "python3",
                     timeout: float | None = None, cell_timeout: float | None = None,
                     progress: bool = True) -> NotebookRun:
    """Run one notebook into ``run_dir`` with papermill; never raises for a notebook's
    own failure (it is returned in the NotebookRun), only for KeyboardInterrupt."""
    import papermill
    from nbclient.exceptions import CellTimeoutError

    source, run_dir = Path(source).resolve(), Path(run_dir).resolve()
    run = NotebookRun(source=source, parameters=dict(parameters))
    run.executed = run_dir / source.name
    views = run_dir / run.name
    # Nothing is deleted or overwritten here: run_notebooks gives every run a fresh folder.
    if run_dir == source.parent:
        raise CourseError(f"running {source.name} into its own folder {run_dir} would write over the "
                          "notebook; choose another run folder")
    for path in (run.executed, run.executed.with_suffix(".html"), views):
        if os.path.lexists(path):
            raise CourseError(f"{_show_path(path)} already exists; execute_notebook does not replace "
                              "files: run into a new folder (run_notebooks does)")

    deadline = time.monotonic() + timeout if timeout else None
    current = {}  # the cell being run and the limit it runs under, for timeouts and dead kernels

    def cell_limit(cell):  # nbclient asks before each cell: the cell limit or the notebook's rest
        current["cell"] = cell
        rest = deadline - time.monotonic() if deadline is not None else None
        limits = {k: v for k, v in (("cell", cell_timeout), ("notebook", rest)) if v is not None}
        if not limits:
            return None
        current["limit"] = min(limits, key=limits.get)
        return max(1, math.ceil(limits[current["limit"]]))

    start = time.monotonic()
    try:
        with _environ(**{_records.RECORD_DIR_ENV: run_dir, _records.NOTEBOOK_ENV: run.name,
                         _records.OUTPUT_DIR_ENV: views, _records.STARTED_ENV: repr(time.time())}):
            papermill.execute_notebook(str(source), str(run.executed), parameters=parameters,
                                       kernel_name=kernel_name, cwd=str(source.parent),
                                       progress_bar=progress, timeout_func=cell_limit)
        run.status = "ok"
    except papermill.PapermillExecutionError as e:
        run.status, run.error = "failed", f"{e.ename}: {e.evalue}".strip().rstrip(":")
        run.cell = _source_index(run.executed, e.cell_index)
        run.cell_source, run.exec_count = _first_line(e.source), e.exec_count
    except CellTimeoutError:
        limit = (f"the notebook's {timeout:g} s limit" if current.get("limit") == "notebook"
                 else f"the {cell_timeout:g} s cell limit")
        run.status, run.error = "timeout", f"CellTimeoutError: stopped after {limit}"
        _mark_cell(run, current.get("cell"), run.error)
    except KeyboardInterrupt:
        run.status, run.error = "interrupted", "KeyboardInterrupt"
        raise
    except Exception as e:  # kernel died or did not start, bad notebook file, ...
        first = str(e).strip().splitlines()
        run.status, run.error = "failed", f"{type(e).__name__}: {first[0] if first else ''}"
        _mark_cell(run, current.get("cell"), run.error)
    finally:
        run.seconds = time.monotonic() - start
        if not run.executed.exists():
            run.executed = None
        run.views = sorted(views.rglob("*.html")) if views.is_dir() else []
    if run.executed is not None:
        try:
            run.html = export_html(run.executed)
        except Exception as e:  # a view that cannot be rendered must not hide the result
            print(f"warning: could not render {run.executed.name} to HTML: {e}", file=sys.stderr)
    return run


def _first_line(source: str) -> str:
    lines = [ln for ln in source.splitlines() if ln.strip()]
    return (lines[0][:100] + (" ..." if len(lines) > 1 or len(lines[0]) > 100 else "")) if lines else ""


def _source_index(executed: Path, index: int) -> int:
    """Index in the executed notebook (as papermill counts, i.e. with its injected-parameters
    cell but before its error markers) -> index in the source notebook."""
    import nbformat

    cells = [c for c in nbformat.read(executed, as_version=4).cells
             if ERROR_MARKER_TAG not in c.metadata.get("tags", [])]
    injected = sum("injected-parameters" in c.metadata.get("tags", []) for c in cells[:index])
    return index - injected


def _mark_cell(run: NotebookRun, cell, message: str):
    """Find the cell that was running in the saved notebook, note the failure at the top
    (like papermill does for errors) and set run.cell / cell_source / exec_count."""
    import nbformat

    if cell is None or run.executed is None or not run.executed.exists():
        return
    nb = nbformat.read(run.executed, as_version=4)
    same = [i for i, c in enumerate(nb.cells)
            if (cell.get("id") and c.get("id") == cell.get("id")) or
            (not cell.get("id") and c.cell_type == "code" and c.source == cell.source)]
    if not same:
        return
    run.cell = _source_index(run.executed, same[0])
    run.cell_source = _first_line(cell.source)
    run.exec_count = nb.cells[same[0]].get("execution_count")
    note = nbformat.v4.new_markdown_cell(
        f'<span style="color:red; font-size:1.2em"><b>{html.escape(message)}</b> while running cell '
        f"{run.cell} (the cell with In [{run.exec_count or ' '}]).</span>")
    note.metadata["tags"] = [ERROR_MARKER_TAG]
    nb.cells.insert(0, note)
    nbformat.write(nb, run.executed)


def export_html(executed: Path) -> Path:
    """``x.ipynb`` -> ``x.html`` next to it (nbconvert's lab template, images embedded)."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(executed, as_version=4))
    out = Path(executed).with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


# ----------------------------------------------------------------------------- the run folder
RUN_MANIFEST = ".fourd-run.json"  # in each run folder: every file and folder that run wrote
_SUMMARY_FILES = ("summary.csv", "metrics.csv", "index.html", "index.html.tmp", RUN_MANIFEST)


def _walk(folder: Path) -> tuple[list[str], list[str]]:
    """Relative paths (posix) of the files (and links) and of the folders under `folder`,
    without following links."""
    files, dirs = [], []
    for root, dirnames, filenames in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for d in list(dirnames):
            if os.path.islink(os.path.join(root, d)):
                dirnames.remove(d)
                files.append((rel / d).as_posix())
            else:
                dirs.append((rel / d).as_posix())
        files.extend((rel / f).as_posix() for f in filenames)
    return sorted(files), sorted(dirs)


def _read_run_manifest(run_dir: Path) -> tuple[set, set]:
    """(files, folders) an earlier run recorded in `run_dir`; empty if it has no readable
    manifest (then every file there is the user's)."""
    try:
        m = json.loads((run_dir / RUN_MANIFEST).read_text(encoding="utf-8"))
        files, dirs = m["files"], m["dirs"]
        if m.get("tool") != "fourd" or not isinstance(files, list) or not isinstance(dirs, list):
            return set(), set()
    except (OSError, ValueError, KeyError, TypeError):
        return set(), set()

    def safe(rel):  # a plain relative path inside the folder
        return isinstance(rel, str) and rel and not os.path.isabs(rel) and ".." not in Path(rel).parts
    return {f for f in files if safe(f)} | {RUN_MANIFEST}, {d for d in dirs if safe(d)}


def _write_run_manifest(run_dir: Path) -> None:
    files, dirs = _walk(run_dir)
    files = sorted(set(files) | {RUN_MANIFEST})
    (run_dir / RUN_MANIFEST).write_text(json.dumps(
        {"tool": "fourd", "format": 1, "note": "written by fourd run / fourd course: --force replaces "
         "these files and folders and keeps everything else", "files": files, "dirs": dirs}, indent=1),
        encoding="utf-8")


def check_run_dir(run_dir: str | Path, notebooks: list, *, force: bool = False,
                  allow_inside: bool = False) -> tuple[set, set]:
    """May a run of `notebooks` write `run_dir`? Raises CourseError naming the path and what
    to do if not; returns the (files, folders) an earlier run recorded there (replaced by
    this run when force=True).

    Refused: a folder that is, is inside, or contains a notebook's folder (the run would
    write over the notebooks and the files beside them); a path through a file; a folder
    that is not empty, unless force=True; and, even with force, a file or folder named like
    one this run writes that an earlier run did not record (the user's own).
    allow_inside=True accepts a new folder inside a notebook's folder (run_one's default
    runs/<time>-<name> for a notebook in the working directory).
    """
    run_dir = Path(run_dir).resolve()
    allow_inside = allow_inside and not os.path.lexists(run_dir)
    for nb in notebooks:
        folder = Path(nb).resolve().parent
        if run_dir == folder or (folder in run_dir.parents and not allow_inside):
            where = "is the folder of" if run_dir == folder else "is inside the folder of"
            raise CourseError(f"output folder {run_dir} {where} the notebook {Path(nb).name} ({folder}): the "
                              "run would write over the notebooks and the files beside them. Pass an --out "
                              f"folder outside {folder} (or no --out: runs/<time>-<name> beside notebooks/)")
        if run_dir in folder.parents:
            raise CourseError(f"output folder {run_dir} contains the notebook {Path(nb).name} (in {folder}): "
                              "the run would write over the notebooks and the files beside them. Pass an "
                              "--out folder of its own, outside the notebooks' folder")
    for p in (run_dir, *run_dir.parents):
        if os.path.lexists(p):
            if not p.is_dir():
                raise CourseError(f"output folder {run_dir}: {p} is a file, not a folder; pass another --out")
            break
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return set(), set()
    if not force:
        raise CourseError(f"output folder {run_dir} is not empty; pass a new --out folder, or --force "
                          "(force=True) to replace what an earlier fourd run wrote there (other files are kept)")
    files, dirs = _read_run_manifest(run_dir)
    stems = {Path(nb).stem for nb in notebooks}
    for entry in sorted(run_dir.iterdir()):
        name = entry.name
        ours = name in _SUMMARY_FILES or any(
            name in (stem, f"{stem}.ipynb", f"{stem}.html") or
            (name.startswith(f"{stem}.") and name.endswith(_records.RECORD_SUFFIX)) for stem in stems)
        recorded = name in (dirs if entry.is_dir() and not entry.is_symlink() else files)
        if ours and not recorded:
            raise CourseError(f"output folder {run_dir} holds {name}, which this run writes and which was not "
                              f"written by an earlier fourd run (it is not in {RUN_MANIFEST}); move it away "
                              "or pass another --out folder")
    return files, dirs


def _new_folder(parent: Path, prefix: str) -> Path:
    """A new folder `parent/<prefix><random>` with the mode mkdir gives (umask), unlike
    tempfile.mkdtemp's 0700: it becomes the run folder."""
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise CourseError(f"cannot make a temporary folder in {parent}")


def _unique_sibling(path: Path, tag: str) -> Path:
    k = 1
    while True:
        candidate = path.with_name(f"{path.name}-{tag}" + (f"-{k}" if k > 1 else ""))
        if not os.path.lexists(candidate):
            return candidate
        k += 1


def _move_into_place(tmp: Path, final: Path, recorded: tuple[set, set]) -> Path:
    """Make the finished run in `tmp` the folder `final` in one rename. Files of `final`
    that the earlier run did not record are moved into the new run first (kept); the
    earlier run's recorded files are then deleted with the old folder, nothing else.
    Returns where the run is (`final`, or a sibling if the user's files are in the way)."""
    _write_run_manifest(tmp)
    if not os.path.lexists(final):
        os.rename(tmp, final)
        return final
    if final.is_dir() and not any(final.iterdir()):
        final.rmdir()
        os.rename(tmp, final)
        return final
    old_files, old_dirs = recorded
    files, dirs = _walk(final)
    keep = [f for f in files if f not in old_files] + [d for d in dirs if d not in old_dirs and
                                                        not any(final.joinpath(d).iterdir())]
    clash = [k for k in keep if (os.path.lexists(tmp / k) and not (k in dirs and (tmp / k).is_dir())) or
             any(os.path.lexists(tmp / parent) and not (tmp / parent).is_dir()
                 for parent in map(str, Path(k).parents) if parent != ".")]
    if clash:  # a file the user put in the earlier run's views where this run wrote one
        elsewhere = _unique_sibling(final, "new")
        os.rename(tmp, elsewhere)
        print(f"warning: {final / clash[0]} is not from an earlier run and this run wrote a file of that "
              f"name: the run is in {elsewhere}, {final} is unchanged", file=sys.stderr)
        return elsewhere
    for k in keep:
        (tmp / k).parent.mkdir(parents=True, exist_ok=True)
        os.rename(final / k, tmp / k)
    old = _new_folder(final.parent, f".{final.name}.fourd-old-")
    os.rename(final, old / "run")  # two renames: `final` is missing for an instant, never mixed
    os.rename(tmp, final)
    for f in old_files:  # the old folder now holds only what the earlier run recorded
        with contextlib.suppress(OSError):
            (old / "run" / f).unlink()
    for d in sorted(old_dirs, key=lambda d: -len(Path(d).parts)):
        with contextlib.suppress(OSError):
            (old / "run" / d).rmdir()
    try:
        (old / "run").rmdir()
        old.rmdir()
    except OSError:  # something appeared there meanwhile: keep it
        print(f"warning: files that were in {final} while the run ended are in {old / 'run'}", file=sys.stderr)
    return final


def _relocate(run: NotebookRun, tmp: Path, final: Path) -> None:
    """Point a NotebookRun's paths into the folder the run was moved to."""
    def moved(p):
        if p is None:
            return None
        try:
            return final / Path(p).relative_to(tmp)
        except ValueError:
            return p
    run.executed, run.html = moved(run.executed), moved(run.html)
    run.views = [moved(v) for v in run.views]


# ----------------------------------------------------------------------------- the series

def default_run_dir(notebooks_dir: Path, label: str) -> Path:
    """``runs/<YYYYmmdd-HHMMSS>-<label>`` next to the notebooks folder (git-ignored)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(notebooks_dir).resolve().parent / "runs" / f"{stamp}-{label}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def run_notebooks(notebooks: list, run_dir: str | Path, parameters: dict, *, strict: bool = False,
                  keep_going: bool = False, timeout: float | None = None,
                  cell_timeout: float | None = None, progress: bool = True,
                  title: str = "fourd course", force: bool = False,
                  allow_inside: bool = False) -> CourseResult:
    """Run notebooks in order into ``run_dir`` and write the summary.

    parameters: values to inject; each notebook gets those its parameters cell declares.
      strict=True (``fourd run``): a parameter the notebook does not declare is an error
      (a typo would otherwise be silently ignored).
    run_dir: a new or empty folder, outside the notebooks' folders (see `check_run_dir`).
      force=True accepts a folder an earlier run wrote: what that run recorded in its
      manifest (RUN_MANIFEST) is replaced, every other file in the folder is kept.
      allow_inside: see `check_run_dir` (for a run folder the runner chose itself).
    Raises CourseError, before running anything, for a run folder it must not write.
    """
    from tqdm.auto import tqdm

    notebooks = [Path(p).resolve() for p in notebooks]
    run_dir = Path(run_dir).resolve()
    recorded = check_run_dir(run_dir, notebooks, force=force, allow_inside=allow_inside)  # before any work
    declared = {p: declared_parameters(p) for p in notebooks}
    for name in parameters:
        users = [p.name for p in notebooks if name in declared[p]]
        if strict and len(users) < len(notebooks):
            p = next(p for p in notebooks if name not in declared[p])
            raise CourseError(f"{p.name} has no parameter {name!r} (its parameters cell declares: "
                              f"{', '.join(declared[p]) or 'nothing'})")
        if not users:
            print(f"warning: no notebook declares parameter {name!r}; it is not passed",
                  file=sys.stderr)

    runs = [NotebookRun(source=p, parameters={k: v for k, v in parameters.items() if k in declared[p]})
            for p in notebooks]
    final_dir = run_dir
    created = [p for p in (final_dir.parent, *final_dir.parent.parents) if not p.exists()]
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    # The run is written into a temporary folder beside the run folder and moved into place
    # when it ends (also after a failure or Ctrl-C): a run folder is only ever replaced whole.
    run_dir = _new_folder(final_dir.parent, f".{final_dir.name}.fourd-running-")
    meta = dict(title=title, run_dir=str(final_dir), parameters=parameters, commit=_records.git_commit(),
                started=_dt.datetime.now().isoformat(timespec="seconds"))
    try:
        summary = write_summary(run_dir, runs, meta)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        for p in created:
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    print(f"writing into {_show_path(run_dir)}; it becomes {_show_path(final_dir)} when the run ends",
          file=sys.stdout)
    bar = tqdm(runs, desc=title, unit="notebook", disable=not progress)
    try:
        with python_kernel() as kernel:
            for i, run in enumerate(bar):
                bar.set_postfix_str(run.name)
                params = run.parameters
                shown = " ".join(f"{k}={v}" for k, v in params.items())
                tqdm.write(f"[{i + 1}/{len(runs)}] {_show_path(run.source)} {shown}", file=sys.stdout)
                try:
                    runs[i] = run = execute_notebook(run.source, run_dir, params, kernel_name=kernel,
                                                     timeout=timeout, cell_timeout=cell_timeout,
                                                     progress=progress)
                except KeyboardInterrupt:
                    run.status = "interrupted"
                    raise
                if run.status == "ok":
                    tqdm.write(f"      ok in {run.seconds:.1f} s", file=sys.stdout)
                else:
                    tqdm.write(run.failure_details(), file=sys.stdout)
                summary = write_summary(run_dir, runs, meta)
                if run.status != "ok" and not keep_going:
                    break
    finally:
        bar.close()
        meta["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
        try:
            summary = write_summary(run_dir, runs, meta)
        finally:
            try:
                placed = _move_into_place(run_dir, final_dir, recorded)
            except OSError as e:  # e.g. the folder was made or filled meanwhile: keep the run where it is
                print(f"warning: could not move the run to {final_dir} ({type(e).__name__}: {e}); it is in "
                      f"{run_dir}", file=sys.stderr)
                placed = run_dir
            for run in runs:
                _relocate(run, run_dir, placed)
    return CourseResult(run_dir=placed, runs=runs, summary=summary, index=placed / "index.html")


def run_course(*, scale: str | None = None, device: str | None = None, seed: int | None = None,
               only=(), out: str | Path | None = None, notebooks: str | Path | None = None,
               timeout: float | None = None, cell_timeout: float | None = None, extra: dict | None = None,
               keep_going: bool = False, progress: bool = True, force: bool = False) -> CourseResult:
    """Run the notebook series (``fourd course``). Unset scale/device/seed keep each
    notebook's own default. timeout: seconds per notebook (default by scale, 0 = none).
    force: replace an earlier run in ``out`` (see `run_notebooks`)."""
    folder = find_notebooks_dir(notebooks)
    nbs = discover(folder, only)
    params = {k: v for k, v in dict(scale=scale, device=device, seed=seed).items() if v is not None}
    params.update(extra or {})
    if timeout is None:
        timeout = DEFAULT_TIMEOUT.get(scale, DEFAULT_TIMEOUT[None])
    run_dir = Path(out) if out else default_run_dir(folder, scale or "default")
    return run_notebooks(nbs, run_dir, params, keep_going=keep_going, timeout=timeout or None,
                         cell_timeout=cell_timeout or None, progress=progress, force=force,
                         title=f"fourd course ({', '.join(f'{k}={v}' for k, v in params.items()) or 'defaults'})")


def run_one(notebook: str | Path, parameters: dict | None = None, *, out: str | Path | None = None,
            notebooks: str | Path | None = None, timeout: float | None = None,
            cell_timeout: float | None = None, progress: bool = True, force: bool = False) -> CourseResult:
    """Run one notebook with parameters (``fourd run``), same outputs as the course.
    force: replace an earlier run in ``out`` (see `run_notebooks`)."""
    source = resolve_notebook(notebook, notebooks)
    parameters = dict(parameters or {})
    if timeout is None:
        timeout = DEFAULT_TIMEOUT.get(parameters.get("scale"), DEFAULT_TIMEOUT[None])
    chosen = out is None  # a new timestamped folder: it may lie inside the notebook's folder
    if out is None:
        try:  # runs/ of the checkout even for a notebook elsewhere; else of the working dir
            out = default_run_dir(find_notebooks_dir(notebooks), source.stem)
        except CourseError:
            out = default_run_dir(Path.cwd() / "notebooks", source.stem)
    run_dir = Path(out)
    return run_notebooks([source], run_dir, parameters, strict=True, timeout=timeout or None,
                         cell_timeout=cell_timeout or None, progress=progress, force=force,
                         title=f"fourd run {source.name}", allow_inside=chosen)


# ----------------------------------------------------------------------------- summary

def _status_frame(runs: list, run_dir: Path) -> pd.DataFrame:
    rel = lambda p: os.path.relpath(p, run_dir) if p else ""
    return pd.DataFrame([dict(notebook=r.name, status=r.status,
                              seconds=round(r.seconds, 1) if r.seconds is not None else None,
                              cell=r.cell, error=r.error, html=rel(r.html), executed=rel(r.executed))
                         for r in runs], columns=["notebook", "status", "seconds", "cell", "error", "html",
                                                  "executed"])


def write_summary(run_dir: Path, runs: list, meta: dict) -> pd.DataFrame:
    """summary.csv (one row per record, or per notebook without one), metrics.csv, index.html."""
    run_dir = Path(run_dir)
    status = _status_frame(runs, run_dir)
    records = _records.load_records(run_dir)
    records = records[records["notebook"].isin(status["notebook"])].drop(columns=["path"])
    summary = status.merge(records, on="notebook", how="left")
    first = ["notebook", "status", "seconds", "variant", "table", "scale", "seed", "data"]
    summary = summary[first + [c for c in summary.columns if c not in first]]
    for c in ("seed", "cell"):  # stay integers next to notebooks without a record
        summary[c] = summary[c].astype("Int64")
    summary.to_csv(run_dir / "summary.csv", index=False)
    long = _records.load_records(run_dir, long=True)
    long[long["notebook"].isin(status["notebook"])].to_csv(run_dir / "metrics.csv", index=False)
    _write_index(run_dir, runs, summary, records, meta)
    return summary


def summary_text(summary: pd.DataFrame, width: int = 70) -> str:
    """The summary as a compact text table: notebook, status, seconds, scale, metrics."""
    meta = set(_records.META_FIELDS) | set(_status_frame([], Path(".")).columns)
    metric_cols = [c for c in summary.columns if c not in meta]

    def metrics(row):
        text = "  ".join(f"{c}={row[c]:.4g}" for c in metric_cols if pd.notna(row[c]))
        return text if len(text) <= width else text[:width - 3] + "..."

    view = summary[["notebook", "variant", "status", "seconds", "scale", "seed"]].copy()
    view["variant"] = view["variant"].fillna("")
    view["metrics"] = summary.apply(metrics, axis=1) if len(summary) else []
    return view.astype(object).where(view.notna(), "").to_string(index=False)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.ok { background: #e6f6e6; } .failed, .timeout, .interrupted { background: #fde2e2; }
.notrun { color: #888; } code { font-size: 0.9em; } .meta td:first-child { font-weight: bold; }
"""


def _write_index(run_dir: Path, runs: list, summary: pd.DataFrame, records: pd.DataFrame, meta: dict):
    """index.html: what ran, links to every view, the summary and paper-vs-ours tables."""
    from .repro import side_by_side_records, style

    esc = html.escape
    link = lambda p, text: f'<a href="{esc(os.path.relpath(p, run_dir))}">{esc(text)}</a>' if p else ""
    params = ", ".join(f"{k}={v}" for k, v in meta["parameters"].items()) or "each notebook's defaults"
    done = sum(r.status == "ok" for r in runs)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(meta['title'])}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{esc(meta['title'])}</h1><table class='meta'>",
             f"<tr><td>parameters</td><td>{esc(params)}</td></tr>",
             f"<tr><td>commit</td><td><code>{esc(meta['commit'])}</code></td></tr>",
             f"<tr><td>started</td><td>{esc(meta['started'])}</td></tr>",
             f"<tr><td>finished</td><td>{esc(meta.get('finished', 'still running'))}</td></tr>",
             f"<tr><td>result</td><td>{done} of {len(runs)} notebooks ok</td></tr></table>",
             "<h2>Notebooks</h2><table><tr><th>#</th><th>notebook</th><th>status</th><th>seconds</th>"
             "<th>parameters</th><th>views</th><th>failure</th></tr>"]
    for i, r in enumerate(runs, 1):
        views = [link(r.html, "executed notebook (HTML)"), link(r.executed, ".ipynb")]
        views += [link(v, os.path.relpath(v, run_dir / r.name)) for v in r.views]
        failure = ""
        if r.status not in ("ok", "not run"):
            failure = f"cell {r.cell}: " if r.cell is not None else ""
            failure = f"{esc(failure + r.error)}" + (f"<br><code>{esc(r.cell_source)}</code>"
                                                     if r.cell_source else "")
        parts.append(
            f"<tr class='{r.status.replace(' ', '')}'><td>{i}</td><td>{esc(r.source.name)}</td>"
            f"<td>{esc(r.status)}</td><td>{'' if r.seconds is None else f'{r.seconds:.1f}'}</td>"
            f"<td>{esc(', '.join(f'{k}={v}' for k, v in r.parameters.items()))}</td>"
            f"<td>{'<br>'.join(v for v in views if v)}</td><td>{failure}</td></tr>")
    parts.append("</table><h2>Summary</h2><p>Every record; versions and commits in "
                 "<a href='summary.csv'>summary.csv</a>, one value per row in "
                 "<a href='metrics.csv'>metrics.csv</a>.</p>")
    hidden = ["html", "executed", "error", "cell", "commit", "created", "gpu", "python", "torch", "fourdlib"]
    shown = summary.drop(columns=hidden, errors="ignore")  # all of them are in summary.csv
    shown = shown.astype({"seed": float})  # Int64's <NA> would show; floats print as "3"
    parts.append(shown.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}"))
    tables = [t for t in dict.fromkeys(records["table"].dropna()) if t] if len(records) else []
    if tables:
        parts.append("<h2>Paper vs ours</h2>")
    for t in tables:
        try:
            parts.append(style(side_by_side_records(t, records)).to_html())
        except (KeyError, ValueError, TypeError) as e:  # a bad record must not lose the index
            parts.append(f"<p>{esc(t)}: cannot build the table: {esc(str(e))}</p>")
    parts.append("</body></html>")
    tmp = run_dir / "index.html.tmp"
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(run_dir / "index.html")

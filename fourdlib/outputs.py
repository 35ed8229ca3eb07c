"""Output folders that never cost a user a file.

A command that writes a folder of results (`fourd infer`, ...) goes through `output_folder`:

    with output_folder(out, inputs=[input_path], force=args.force, tool="fourd infer") as tmp:
        ...write files into tmp...

- checked before any work: `out` must not be a file, must not be or hold an input, must not
  lie inside an input folder, and must be empty or missing, unless force;
- force replaces only what an earlier run of the tool recorded in out/MANIFEST (the files it
  wrote); a folder holding any other file is refused even with force, since those files
  are someone else's;
- the new files are written into a temporary sibling folder and moved in only when all of
  them exist, so a failed run leaves `out` as it was.

The `fourd infer METHOD` commands share their command line too: `infer_parser` gives the
arguments every one of them takes (INPUT, --checkpoint, --out, --force, --device), and
`run_command` turns a user error into `PROG: error: ...` and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

__all__ = ["OutputError", "MANIFEST", "check_output_folder", "output_folder", "infer_parser", "run_command"]

MANIFEST = ".fourd-outputs.json"


class OutputError(ValueError):
    """An output folder that would overwrite or mix with files the user has not asked to replace."""


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _recorded(out: Path) -> list[str] | None:
    """The files an earlier run recorded in out's manifest, or None without a readable one."""
    try:
        files = json.loads((out / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # an entry that leads outside out (a hand-edited manifest) is never followed
    return [f for f in files if isinstance(f, str) and _within((out / f).resolve(), out.resolve())]


def check_output_folder(out, inputs=(), force: bool = False, tool: str = "fourd") -> Path:
    """Raise OutputError if writing to `out` could touch an input or a file it should not.

    Returns out, resolved. Call it before doing any work.
    """
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a folder (new, or written by an earlier {tool})")
    for i in inputs:
        i = Path(i).expanduser().resolve()
        if _within(i, out):
            raise OutputError(f"--out {out} holds the input {i}; writing there could overwrite it. "
                              "Choose a new folder")
        if i.is_dir() and _within(out, i):
            raise OutputError(f"--out {out} lies inside the input folder {i}; choose a folder outside it")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise OutputError(f"--out {out} is not empty; choose a new folder, or pass --force to replace "
                              f"what an earlier {tool} wrote there")
        recorded = _recorded(out)
        if recorded is None:
            raise OutputError(f"--out {out} holds files that {tool} did not write (no {MANIFEST}); "
                              "--force only replaces an earlier run's own outputs. Choose a new folder")
        theirs = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                        if p.is_file() and p.name != MANIFEST and str(p.relative_to(out)) not in recorded)
        if theirs:
            raise OutputError(f"--out {out} holds {len(theirs)} file(s) an earlier {tool} did not write "
                              f"({', '.join(theirs[:3])}{', ...' if len(theirs) > 3 else ''}); choose a new folder")
    return out


@contextmanager
def output_folder(out, inputs=(), force: bool = False, tool: str = "fourd"):
    """Check `out` (see check_output_folder), yield a temporary sibling folder to write into,
    then replace the earlier run's files in `out` by the new ones and record them."""
    out = check_output_folder(out, inputs, force, tool)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        (tmp / MANIFEST).write_text(json.dumps({"tool": tool, "files": files}, indent=1))
        if not out.exists():
            os.replace(tmp, out)
            return
        old = _recorded(out) or []
        for rel in old:                       # only what the earlier run wrote (checked above)
            (out / rel).unlink(missing_ok=True)
        for rel in files + [MANIFEST]:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, out / rel)
        for d in sorted({(out / rel).parent for rel in old}, key=lambda d: len(d.parts), reverse=True):
            if d != out and d.is_dir() and not any(d.iterdir()):  # emptied by removing the old files
                d.rmdir()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------ fourd infer METHOD
def infer_parser(prog: str, description: str, *, input_metavar: str, input_help: str, checkpoint_help: str,
                 force_help: str, options: Callable[[argparse.ArgumentParser], object] | None = None,
                 device_default: str | None = "cpu",
                 device_help: str = "cpu, cuda or cuda:N") -> argparse.ArgumentParser:
    """The parser of a `fourd infer METHOD` command: INPUT, --checkpoint CKPT (required),
    --out DIR (required), --force, then the method's own `options(parser)`, then --device."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("input", metavar=input_metavar, help=input_help)
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help=checkpoint_help)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: new or empty (see --force)")
    p.add_argument("--force", action="store_true", help=force_help)
    if options is not None:
        options(p)
    p.add_argument("--device", default=device_default, help=device_help)
    return p


def run_command(prog: str, work: Callable[[], str | None]) -> int:
    """Run `work()` for the command `prog`: a user error (a bad input, checkpoint or output
    folder) prints `prog: error: ...` on stderr and returns 2; otherwise print what work
    returned (its success message, if any) and return 0."""
    from .data.sequence import FormatError          # here, so that importing this module stays torch-free
    from .train.checkpoint import CheckpointError

    try:
        message = work()
    except (ValueError, TypeError, FormatError, CheckpointError, FileNotFoundError, OutputError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    if message:
        print(message)
    return 0

"""Atomic file writes: a reader (or a crash) never sees half a file.

Write to a temporary file in the same folder, flush it to disk, then rename it over the
target; a rename within one file system is atomic. Used for sequences, manifests,
checkpoints and result records. Also `cache_dir()`, where fourdlib keeps what it makes.

The final file gets the mode `open()` would give it: 0o666 less the umask for a new file,
the old file's mode when it replaces one. The temporary is named after its target and its
writer, `.<name>.<host>-<pid>-<random>.tmp`, so that a temporary left by a killed writer can
be recognised: each write to a target first removes that target's stale temporaries, i.e.
those whose writer process (on this host) is gone, and those of other hosts (or of older
fourdlib versions, which did not record the writer) untouched for `STALE_TEMP_AGE_S`.
A live writer's temporary is never removed.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
import time
from pathlib import Path

STALE_TEMP_AGE_S = 3600.0  # a temporary whose writer cannot be checked is stale after this long
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]  # short, file-name safe


def _temp_pattern(name: str) -> re.Pattern:
    # .<name>.<host>-<pid>-<random>.tmp, or .<name>.<8 chars>.tmp (mkstemp, fourdlib <= 0.1)
    return re.compile(rf"\.{re.escape(name)}\.(?:(?P<host>[0-9a-f]{{8}})-(?P<pid>\d+)-[A-Za-z0-9_]+"
                      r"|(?P<legacy>[a-z0-9_]{8}))\.tmp")


def is_temporary_of(target, path) -> bool:
    """Is `path` a temporary file that `atomic_write(target)` makes (or made)?"""
    target, path = Path(target), Path(path)
    return path.parent == target.parent and _temp_pattern(target.name).fullmatch(path.name) is not None


def _pid_alive(pid: int) -> bool | None:
    """Is process `pid` of this host running? None: cannot tell."""
    if pid <= 0 or os.name == "nt":  # on Windows os.kill(pid, 0) would end the process
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    except (OSError, OverflowError):
        return None
    return True


def _remove_stale_temporaries(target: Path) -> None:
    """Remove temporaries of `target` whose writer is dead (see the module docstring)."""
    pattern = _temp_pattern(target.name)
    prefix = f".{target.name}."
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        m = pattern.fullmatch(entry.name)
        if m is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            alive = _pid_alive(int(m["pid"])) if m["host"] == _HOST else None
            if alive is None:  # another host's writer, an older fourdlib's: only age tells
                stale = now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_AGE_S
            else:
                stale = not alive
            if stale:
                os.unlink(entry.path)
        except FileNotFoundError:
            continue  # removed meanwhile (its writer finished)
        except OSError:
            continue  # cannot remove it: not this write's problem


def _new_temporary(path: Path) -> tuple[int, Path]:
    """Create the temporary exclusively, with the mode open() would give a new file."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            # 0o666 is filtered by the umask by the kernel itself, as open() does: no need to
            # read the process-wide umask (os.umask can only be read by setting it)
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file next to {path}")


def cache_dir(create: bool = True) -> Path:
    """Where generated data, trained runs and hand-run notebooks' results are kept:
    $FOURD_CACHE, else ~/.cache/fourdlib (created unless create=False)."""
    path = Path(os.environ.get("FOURD_CACHE") or Path.home() / ".cache" / "fourdlib")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", **open_kwargs):
    """`with atomic_write(path) as f: ...` writes `path` all at once or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = _new_temporary(path)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            try:  # replacing a file keeps its permissions, as writing it in place would
                os.chmod(f.fileno(), os.stat(path).st_mode & 0o777)
            except FileNotFoundError:
                pass
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise

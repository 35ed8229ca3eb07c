"""Standalone HTML for every view, and a headless-Chromium screenshot of such a page.

`save_html` writes a k3d plot (`plot.get_snapshot()`: k3d's JavaScript and the data in
one file) or a plotly figure (`write_html(include_plotlyjs=True)`: plotly.js inlined) as a
page that opens offline, in any browser, long after the notebook ran. Both pages set
`data-fourd-ready` on <body> once the view is built, so a script can tell when to look.

`screenshot_html` looks at such a page as a person does: it opens it in headless
Chromium, with WebGL drawn in software (SwiftShader), waits for the ready mark and saves
a PNG. It drives Chromium over the DevTools protocol on a pipe (standard library only)
rather than with `chromium --screenshot`: that one times the page in virtual time, which
runs ahead while k3d decodes its data in a Web Worker, and so it photographs an empty page.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

READY_ATTRIBUTE = "data-fourd-ready"
_READY_JS = f"document.body.setAttribute('{READY_ATTRIBUTE}', '1');"

# Flags for a quiet, software-rendered headless Chromium. The old headless mode and
# --disable-gpu leave k3d's WebGL canvas blank; ANGLE on SwiftShader draws it.
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", "--mute-audio",
)


def save_html(view: Any, path: str | os.PathLike, autoplay: bool = True) -> Path:
    """Write a k3d plot or a plotly figure to `path` as one self-contained HTML page.

    autoplay: an animated k3d plot starts playing when the page opens (plotly animations
    always do). Returns the path. Needs no frontend and no network.
    """
    import plotly.graph_objects as go
    from k3d.plot import Plot

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(view, Plot):
        if view.snapshot_type != "full":
            # 'online' / 'inline' snapshots load k3d from a CDN: blank offline
            raise ValueError(f"plot.snapshot_type is {view.snapshot_type!r}; use 'full' for a page that works offline")
        js = _READY_JS
        if autoplay and view.get_time_series_times():
            js += " K3DInstance.startAutoPlay();"  # runs in the snapshot's K3DInstance.then(...)
        path.write_text(view.get_snapshot(additional_js_code=js), encoding="utf-8")
    elif isinstance(view, go.Figure):
        view.write_html(path, include_plotlyjs=True, full_html=True, post_script=_READY_JS)
    else:
        raise TypeError(f"save_html takes a k3d.Plot or a plotly Figure, not {type(view).__name__}")
    return path


def find_chromium() -> str | None:
    """Path of a Chromium / Chrome executable on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot_html(html_path: str | os.PathLike, png_path: str | os.PathLike, size: tuple[int, int] = (800, 600),
                    timeout_s: float = 60.0, settle_s: float = 0.5,
                    wait_for: str | None = f"[{READY_ATTRIBUTE}]") -> Path:
    """Open `html_path` in headless Chromium at `size` (width, height) and save what it shows as PNG.

    Waits until the page has loaded and the CSS selector `wait_for` matches (by default
    the ready mark `save_html` puts on its pages; None: just the load), then `settle_s`
    seconds and two animation frames, then takes the picture. Raises FileNotFoundError
    without Chromium, TimeoutError (with the page's errors) after `timeout_s`.
    """
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium on PATH (Debian: apt-get install chromium)")
    html_path, png_path = Path(html_path).resolve(), Path(png_path)
    if not html_path.is_file():
        raise FileNotFoundError(f"no such page: {html_path}")
    width, height = (int(v) for v in size)
    deadline = time.monotonic() + timeout_s

    # DevTools over a pipe: Chromium reads commands on fd 3 and writes replies on fd 4,
    # each a JSON message ended by a NUL byte.
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    # copies at fd >= 10, so that placing them at 3 and 4 in the child cannot overwrite one another
    child_in, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_chrome_r, from_chrome_w))

    def give_child_fds():  # runs in the child, before exec; dup2 makes 3 and 4 inheritable
        os.dup2(child_in, 3)
        os.dup2(child_out, 4)

    with tempfile.TemporaryDirectory(prefix="fourd-chromium-", ignore_cleanup_errors=True) as profile:
        log = open(Path(profile) / "stderr.txt", "w+b")
        proc = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=False, preexec_fn=give_child_fds,
            start_new_session=True)  # its own process group: its helpers are ended with it
        for fd in (to_chrome_r, from_chrome_w, child_in, child_out):
            os.close(fd)
        page_errors: list[str] = []
        buffer, next_id = b"", 0

        def call(method: str, session: str | None = None, **params) -> dict:
            """Send one DevTools command and return its result, collecting page errors meanwhile."""
            nonlocal buffer, next_id
            next_id += 1
            message = {"id": next_id, "method": method, "params": params}
            if session:
                message["sessionId"] = session
            os.write(to_chrome_w, json.dumps(message).encode() + b"\0")
            while True:
                while b"\0" not in buffer:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not select.select([from_chrome_r], [], [], remaining)[0]:
                        raise TimeoutError(f"no answer to {method}")
                    chunk = os.read(from_chrome_r, 1 << 20)
                    if not chunk:
                        log.seek(0)
                        raise RuntimeError(f"Chromium exited; its log ends: {log.read()[-2000:].decode(errors='replace')}")
                    buffer += chunk
                raw, buffer = buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("method") == "Runtime.exceptionThrown":
                    details = reply["params"]["exceptionDetails"]
                    page_errors.append(details.get("exception", {}).get("description", details.get("text", "")))
                elif reply.get("method") == "Runtime.consoleAPICalled" and reply["params"]["type"] == "error":
                    page_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                for a in reply["params"]["args"]))
                if reply.get("id") == next_id:
                    if "error" in reply:
                        raise RuntimeError(f"Chromium refused {method}: {reply['error']}")
                    return reply["result"]

        try:
            page = next(t for t in call("Target.getTargets")["targetInfos"] if t["type"] == "page")
            session = call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
            call("Runtime.enable", session)
            call("Emulation.setDeviceMetricsOverride", session, width=width, height=height,
                 deviceScaleFactor=1, mobile=False)
            call("Page.navigate", session, url=html_path.as_uri())
            ready = "document.readyState === 'complete'"
            if wait_for:
                ready += f" && document.querySelector({json.dumps(wait_for)}) !== null"
            while not call("Runtime.evaluate", session, expression=ready, returnByValue=True)["result"].get("value"):
                if time.monotonic() > deadline:
                    raise TimeoutError("still not ready")
                time.sleep(0.2)
            time.sleep(settle_s)  # k3d draws its first frame on a timer after loading
            call("Runtime.evaluate", session, awaitPromise=True,
                 expression="new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            png = base64.b64decode(call("Page.captureScreenshot", session, format="png")["data"])
        except TimeoutError as e:
            raise TimeoutError(f"{html_path.name} was not ready ({wait_for or 'loaded'}) within {timeout_s:g} s in "
                               f"Chromium ({e}); page errors: {page_errors[-5:] or 'none'}") from None
        finally:
            try:  # ask Chromium to close (it ends its helper processes), then make sure of it
                os.write(to_chrome_w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
            os.close(to_chrome_w)
            os.close(from_chrome_r)
            log.close()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(png)
    return png_path

"""The built site in a real browser: headless Chromium opens it, sorts a table by clicking a header, follows
a link to a task page, checks the phone layout and that no submitted text ran as script, takes a screenshot.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: null-terminated JSON on
file descriptors 3 and 4), with the standard library only, so the test needs nothing but Debian's
``chromium`` package (``apt-get install -y chromium``); without it the test is skipped with the reason.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from phenomena_bench.report import site as leaderboard
from tests.test_leaderboard import EVIL, FAMILIES, site_records

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    explicit = os.environ.get("PHENOMENA_BENCH_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """Headless Chromium controlled through the DevTools protocol over a pipe; one page, flattened session."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds() -> None:  # in the child: DevTools reads commands on fd 3, writes replies on fd 4
            high_r, high_w = os.dup(to_chrome_r), os.dup(from_chrome_w)  # neither may clobber the other
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4, to_chrome_r, from_chrome_w),
            preexec_fn=wire_fds,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime"):
            self.call(f"{domain}.enable", session=True)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe (exit code {self.proc.poll()})")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = False, timeout: float = 30.0
    ) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_loaded(self, url_contains: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.js(f"location.href.includes({json.dumps(url_contains)}) && document.readyState === 'complete'"):
                    return
            except RuntimeError:
                pass  # the old document went away mid-evaluation: navigation in progress
            time.sleep(0.05)
        raise TimeoutError(f"page {url_contains} did not load")

    def open(self, url: str) -> None:
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_loaded(url.rsplit("/", 1)[-1])

    def click(self, selector: str) -> None:
        """A real mouse click (pressed + released at the element's centre), not a synthetic element.click()."""
        box = self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
                session=True,
            )

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def dialogs(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("method") == "Page.javascriptDialogOpening"]

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    binary = find_chromium()
    if binary is None:
        reason = (
            "Chromium not found (install Debian's package: apt-get install -y chromium; or set "
            "PHENOMENA_BENCH_CHROMIUM to the binary)"
        )
        print(f"SKIPPED browser test: {reason}")
        pytest.skip(reason)
    b = Browser(binary, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


def _rows(b: Browser) -> list[str]:
    return b.js("Array.from(document.querySelectorAll('table.sortable tbody tr')).map(r => r.cells[1].textContent)")


def test_site_in_headless_chromium(browser: Browser, tmp_path: Path) -> None:
    site = tmp_path / "site"
    leaderboard.build_site(leaderboard.collect(site_records(), families=FAMILIES, method_descriptions={}), site)
    b = browser
    b.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1100, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        session=True,
    )
    b.open((site / "index.html").as_uri())
    assert b.js("document.title").startswith("leaderboard")
    assert b.js("document.querySelectorAll('h2').length") == 2  # both families

    # follow the link to the grokking task page
    b.click("a[href^='tasks/grok-add-']")
    b.wait_loaded("tasks/grok-add-")
    assert "grok/add" in b.js("document.body.innerText")
    assert _rows(b)[:2] == ["fast", "adamw"]  # ranked by median steps (lower is better)

    # the evil method name is text in the page, and no script of the page's content ran
    assert EVIL in b.js("document.body.innerText")
    assert b.js("document.scripts.length") == 1
    assert b.dialogs() == []

    # sort by the method column: click its header once (ascending), then again (descending)
    b.click("table.sortable thead th:nth-child(2) button")
    asc = _rows(b)
    assert asc == sorted(asc, key=str.lower)
    assert (
        b.js("document.querySelector('table.sortable thead th:nth-child(2)').getAttribute('aria-sort')") == "ascending"
    )
    b.click("table.sortable thead th:nth-child(2) button")
    assert _rows(b) == list(reversed(asc))
    # sort by the metric column: numeric order of data-sort, the censored method last
    b.click("table.sortable thead th:nth-child(3) button")
    assert _rows(b) == ["fast", "adamw", EVIL]

    # plots are drawn
    assert b.js("document.querySelectorAll('figure svg polyline').length") >= 6

    # readable on a phone: nothing wider than the screen except inside the scrolling table wrapper
    b.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
        session=True,
    )
    b.js("location.reload()")
    time.sleep(0.3)
    b.wait_loaded("tasks/grok-add-")
    assert b.js("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert b.js("getComputedStyle(document.querySelector('.table-wrap')).overflowX") == "auto"

    shot = tmp_path / "task-page.png"
    b.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
    out_dir = os.environ.get("PHENOMENA_BENCH_SCREENSHOT_DIR")
    if out_dir:
        shutil.copyfile(shot, Path(out_dir) / shot.name)
    assert b.dialogs() == []

"""The Prefect UI as a user sees it, in a real browser (issue 13): a real Prefect server on
127.0.0.1, one short file through `tagbox watch --once`, then the track's run and its stems artifact
opened in headless Chromium (Debian's ``chromium``, driven by Playwright; no browser is downloaded).

Every image of the stems artifact must have loaded (natural width > 0): the spectrograms are
embedded as ``data:`` URIs, which an http page can show (``file://`` links cannot). The run's page
must show the track's own log lines (a chunk with its p(tag), where the stems went). Screenshots are
written to the test's folder, and to ``docs/img/`` when ``$TAGBOX_SCREENSHOTS`` is set.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
import uuid
from pathlib import Path

import pytest

from support import FAST_TOML, REPO, excerpt, run_cli, write_toml

pytestmark = pytest.mark.ui

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: flags for a root, headless, offline Chromium (no first-run, sync or update traffic)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SOURCES = ["drums", "piano"]


def _post(url: str, payload: dict) -> list[dict]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _images(page, expected: int) -> list[dict]:
    """The page's images once ``expected`` of them are complete (the UI renders markdown after load)."""
    page.wait_for_function(f"() => [...document.images].filter(i => i.complete && i.src.startsWith('data:'))"
                           f".length >= {expected}", timeout=60_000)
    return page.eval_on_selector_all("img", "els => els.map(e => ({src: e.src.slice(0, 22), width: e.naturalWidth, "
                                            "complete: e.complete}))")


def _keep(page, name: str, folder: Path) -> None:
    page.screenshot(path=str(folder / name), full_page=True)
    if os.environ.get("TAGBOX_SCREENSHOTS"):
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / name, REPO / "docs" / "img" / name)


def test_track_run_and_stems_artifact_render_in_chromium(shared: Path, prefect_server, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (`make test` installs the Debian package chromium)")
    from playwright.sync_api import sync_playwright

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    track = f"ui-take-{uuid.uuid4().hex[:8]}"  # the server is shared: this run's names are its own
    excerpt(shared, "d01", inbox / f"{track}.wav", seconds=2.0)
    # the default run mode: the track is its own run of the separate-track/track deployment
    config = write_toml(tmp_path / "fast.toml", FAST_TOML.replace('mode = "in-process"', 'mode = "deployment"'))
    done = run_cli(["watch", inbox, "--out", out, "--sources", ",".join(SOURCES), "--config", config, "--once"],
                   tmp_path / "home", prefect_server.url)
    assert done.returncode == 0, done.stderr[-3000:]
    api = prefect_server.url
    artifacts = _post(f"{api}/artifacts/filter", {"artifacts": {"key": {"any_": [f"tagbox-stems-{track}"]}}})
    runs = _post(f"{api}/flow_runs/filter", {"flow_runs": {"name": {"any_": [f"separate-{track}.wav"]}}})
    assert len(artifacts) == 1 and len(runs) == 1, (artifacts, runs)
    artifact, run = artifacts[0], runs[0]
    assert artifact["flow_run_id"] == run["id"] and "data:image/png;base64," in artifact["data"]
    assert run["deployment_id"] and run["parent_task_run_id"] is None, "a top-level run of the track deployment"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{prefect_server.ui}/artifacts/artifact/{artifact['id']}")
            images = [i for i in _images(page, len(SOURCES) + 1) if i["src"].startswith("data:")]
            _keep(page, "stems-artifact.png", tmp_path)
            page.goto(f"{prefect_server.ui}/runs/flow-run/{run['id']}")
            page.get_by_text(f"separate-{track}.wav").first.wait_for(timeout=60_000)
            page.get_by_text("chunk 1/1 (computed): p(drums)").first.wait_for(timeout=60_000)  # the track's own log
            page.get_by_text(f"stems in {out / track}").first.wait_for(timeout=60_000)
            _keep(page, "track-run.png", tmp_path)
        finally:
            browser.close()
    assert len(images) == len(SOURCES) + 1, images
    assert all(image["complete"] and image["width"] > 0 for image in images), images

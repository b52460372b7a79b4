"""The web UI in a real browser: Debian's chromium (headless, driven by Playwright) against uvicorn.

One real run (inverted pendulum, 2 candidates, 2048 steps) with videos rendered by rewardgen.evaluate.video;
the test opens it, plays a video's metadata, sends feedback, picks best and worst, starts the next
generation and watches it appear. Screenshots go to tests/artifacts/. Skips only when chromium or
the playwright package is missing (never downloads a browser).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import cli, last_json

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)
try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    pytest.skip("the playwright package is missing (pip install playwright; no browser download needed)",
                allow_module_level=True)
uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture(scope="session")
def browser_run(tmp_path_factory) -> Path:
    """A finished one-generation run with a video per candidate."""
    from rewardgen.contract.policy import PolicyExport
    from rewardgen.store import RunStore
    from rewardgen.tasks.spec import task_from_dict
    from rewardgen.evaluate.video import render_rollout, video_path

    runs = tmp_path_factory.mktemp("browser") / "runs"
    proc = cli("evolve", "--task", "inverted-pendulum-balance", "--samples", "2", "--generations", "1",
               "--steps", "2048", "--runs-dir", str(runs), "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = Path(last_json(proc.stdout)["run_dir"])
    store = RunStore.open(run_dir)
    task = task_from_dict(store.read_run()["task"], where="run.json")
    for c in range(2):
        d = store.cand_dir(0, c)
        assert (d / "policy.npz").is_file(), (d / "metrics.json").read_text()
        info = render_rollout(task, PolicyExport.from_bytes((d / "policy.npz").read_bytes()), video_path(d),
                              seed=10_000, width=320, height=240)
        assert info["frames"] > 1
    return run_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(browser_run: Path):
    from rewardgen.web import create_app

    app = create_app(browser_run.parent)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", app
    app.state.jobs.wait_all(120)
    srv.should_exit = True
    thread.join(10)


WAIT_METADATA = """async (sel) => {
  const v = document.querySelector(sel);
  if (v.readyState < 1) {
    await new Promise((resolve, reject) => {
      v.addEventListener("loadedmetadata", resolve, {once: true});
      v.addEventListener("error", () => reject(new Error("video error " + (v.error && v.error.code))), {once: true});
      v.load();
    });
  }
  return {duration: v.duration, width: v.videoWidth, height: v.videoHeight};
}"""


@pytest.mark.slow
def test_review_a_generation_and_start_the_next(server, browser_run: Path) -> None:
    base, app = server
    ARTIFACTS.mkdir(exist_ok=True)
    run_id = browser_run.name
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(30_000)
            expect.set_options(timeout=30_000)
            page.goto(base + "/")
            page.get_by_role("link", name=run_id).click()
            expect(page.locator("h1")).to_contain_text("inverted-pendulum-balance")
            expect(page.locator("svg.chart").first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "run.png"), full_page=True)

            page.get_by_role("link", name="generation 0").click()
            expect(page.locator("#cand-0 video")).to_have_count(1)
            for c in (0, 1):
                meta = page.evaluate(WAIT_METADATA, f"#video-{c}")
                assert meta["duration"] > 0 and (meta["width"], meta["height"]) == (320, 240), meta
            page.screenshot(path=str(ARTIFACTS / "generation.png"), full_page=True)

            form = page.locator("#cand-1 form.cand-feedback")
            form.locator("textarea").fill("candidate 1 leans right; keep the pole vertical")
            form.get_by_role("button", name="Send").click()
            expect(page.get_by_role("status")).to_contain_text("saved")

            page.get_by_label("best 0/1").check()
            page.get_by_label("worst 0/0").check()
            page.get_by_role("button", name="Save preference").click()
            expect(page.get_by_role("status")).to_contain_text("best 0/1, worst 0/0")
            page.screenshot(path=str(ARTIFACTS / "feedback.png"), full_page=True)

            # bad input gets a clear page and nothing is stored
            page.goto(f"{base}/runs/{run_id}/gen/0")
            page.get_by_label("best 0/0").check()
            page.get_by_label("worst 0/0").check()
            page.get_by_role("button", name="Save preference").click()
            expect(page.locator("#error")).to_contain_text("same candidate")

            page.goto(f"{base}/runs/{run_id}")
            page.get_by_role("button", name="Start the next generation").click()
            expect(page.get_by_role("status")).to_contain_text("next generation started")
            expect(page.locator("#next-button")).to_be_disabled()
            expect(page.get_by_role("link", name="generation 1")).to_be_visible(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "next-started.png"), full_page=True)
            row = page.locator("#generations tr", has=page.get_by_role("link", name="generation 1"))
            expect(row).to_contain_text("finished", timeout=180_000)
            # the page reloads once more when the resume process exits and releases the run
            expect(page.locator("#next-button")).to_be_enabled(timeout=120_000)
            expect(page.locator("#next-button")).to_have_text("Start the next generation")
            page.screenshot(path=str(ARTIFACTS / "next-finished.png"), full_page=True)

            # a component name with a lone surrogate (reward code chooses it) must not hide the page
            metrics = browser_run / "gen-000" / "cand-00" / "metrics.json"
            m = json.loads(metrics.read_text())
            comps = m["training"]["components"]
            comps["odd\udcffname"] = next(iter(comps.values()))
            metrics.write_text(json.dumps(m))
            r = page.goto(f"{base}/runs/{run_id}/gen/0")
            assert r.status == 200
            expect(page.locator("#cand-0 svg.chart")).to_contain_text("odd\\udcffname")
            expect(page.locator("#prefer")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "generation-surrogate.png"), full_page=True)
        finally:
            browser.close()

    run = json.loads((browser_run / "run.json").read_text())
    assert run["status"] == "finished" and [g["generation"] for g in run["generations"]] == [0, 1]
    items = json.loads((browser_run / "feedback.json").read_text())["items"]
    assert [(x["kind"], x["applies_to"]) for x in items] == [("text", 1), ("preference", 1)]
    assert os.path.getsize(ARTIFACTS / "generation.png") > 0

"""The web UI in a real browser: Debian's chromium (headless, driven by Playwright) against uvicorn.

One real run (inverted pendulum, 2 candidates, 2048 steps) with videos rendered by rewardgen.evaluate.video;
the test opens it, plays a video's metadata, sends feedback, picks best and worst, starts the next
generation and watches it appear. Screenshots go to tests/artifacts/. Skips only when chromium or
the playwright package is missing (never downloads a browser).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, cli, last_json

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
    from rewardgen.evaluate.video import render_rollout, video_path
    from rewardgen.store import RunStore
    from rewardgen.tasks.spec import task_from_dict

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


@contextlib.contextmanager
def _serving(runs_dir: Path):
    """The web UI over ``runs_dir`` on a free loopback port, in a thread: (base URL, app)."""
    from rewardgen.web import create_app

    app = create_app(runs_dir)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        app.state.jobs.wait_all(120)
        srv.should_exit = True
        thread.join(10)


@pytest.fixture
def server(browser_run: Path):
    with _serving(browser_run.parent) as served:
        yield served


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
    base, _app = server
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

            page.get_by_label("best g0c1").check()
            page.get_by_label("worst g0c0").check()
            page.get_by_role("button", name="Save preference").click()
            expect(page.get_by_role("status")).to_contain_text("best g0c1, worst g0c0")
            page.screenshot(path=str(ARTIFACTS / "feedback.png"), full_page=True)

            # bad input gets a clear page and nothing is stored
            page.goto(f"{base}/runs/{run_id}/gen/0")
            page.get_by_label("best g0c0").check()
            page.get_by_label("worst g0c0").check()
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


@pytest.mark.slow
def test_candidate_page_shows_video_curves_code_diff_and_takes_feedback(server, browser_run: Path) -> None:
    base, _ = server
    ARTIFACTS.mkdir(exist_ok=True)
    run_id = browser_run.name
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(30_000)
            expect.set_options(timeout=30_000)
            page.goto(f"{base}/runs/{run_id}/gen/0")
            page.locator("#cand-1 a.cand-page-link").click()
            expect(page).to_have_url(f"{base}/runs/{run_id}/gen/0/cand/1")
            expect(page.locator("h1")).to_contain_text("Candidate g0c1")
            meta = page.evaluate(WAIT_METADATA, "#video-1")
            assert meta["duration"] > 0 and (meta["width"], meta["height"]) == (320, 240), meta
            expect(page.locator("svg.chart").first).to_be_visible()  # the training curves
            expect(page.locator("#code")).to_contain_text("def compute_reward")
            expect(page.locator("#diff")).to_contain_text("no parent")
            episodes = json.loads((browser_run / "gen-000" / "cand-01" / "metrics.json").read_text())
            count = len(episodes["evaluation"]["episodes"])
            expect(page.locator("#episodes tr")).to_have_count(count + 1)
            expect(page.locator("#take-home")).to_contain_text("--candidate g0c1")
            page.screenshot(path=str(ARTIFACTS / "candidate.png"), full_page=True)

            # feedback from the candidate's page comes back to it, shown as text (never as markup)
            text = "pole drifts left <b>x</b><script>window.__injected = 1</script>"
            page.locator("#cand-text").fill(text)
            page.locator("#cand-feedback").get_by_role("button", name="Send feedback").click()
            expect(page.locator("h1")).to_contain_text("Candidate g0c1")
            assert "/gen/0/cand/1" in page.url
            expect(page.get_by_role("status")).to_contain_text("saved")
            expect(page.locator("table.feedback")).to_contain_text(text)
            assert page.evaluate("window.__injected") is None

            # neighbours, the parent-less note, a candidate that does not exist
            page.get_by_role("link", name="previous candidate").click()
            expect(page.locator("h1")).to_contain_text("Candidate g0c0")
            r = page.goto(f"{base}/runs/{run_id}/gen/0/cand/7")
            assert r.status == 404
            expect(page.locator("#error")).to_contain_text("g0c7")
        finally:
            browser.close()
    items = json.loads((browser_run / "feedback.json").read_text())["items"]
    assert any(x.get("text") == text and x.get("candidate") in ("0/1", "g0c1") for x in items)


@pytest.mark.slow
def test_the_report_link_opens_the_report_with_its_videos(server, browser_run: Path) -> None:
    base, _ = server
    run_id = browser_run.name
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{base}/runs/{run_id}")
            with page.expect_response(lambda r: r.url.endswith("/report")) as info:
                page.locator("#report-link").click()
            response = info.value
            assert response.status == 200
            assert "script-src 'none'" in response.headers["content-security-policy"]
            expect(page.locator("body")).to_contain_text("why it won")
            first = page.locator("video").first
            first.evaluate("v => v.id = 'report-video'")
            meta = page.evaluate(WAIT_METADATA, "#report-video")
            assert meta["duration"] > 0, meta  # the report's relative video links resolve on the server
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.slow
def test_a_running_generation_shows_live_progress_per_candidate(tmp_path: Path) -> None:
    """A run started in a terminal: its page shows each candidate's stage and env-steps and the time
    left while it trains (the events the terminal shows), and drops them when the run is done."""
    runs = tmp_path / "runs"
    runs.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "rewardgen", "evolve", "--task", "inverted-pendulum-balance",
                             "--samples", "2", "--generations", "1", "--steps", "120000", "--schedule", "full",
                             "--workers", "1", "--no-video", "--llm", "offline", "--runs-dir", str(runs)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(runs.glob("*/live.json")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.2)
        run_dir = next(runs.glob("*/live.json")).parent
        with _serving(runs) as (base, _), sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(60_000)
                expect.set_options(timeout=60_000)
                page.goto(f"{base}/runs/{run_dir.name}")
                row = page.locator("#live-g0c0")
                expect(row).to_be_visible()
                expect(page.locator("#live-g0c1")).to_be_visible()
                # the page polls: the first candidate's env-steps grow on the page itself
                expect(row.locator("td.count")).to_contain_text(re.compile(r"^[1-9][0-9,.]*k? / 120k$"))
                expect(page.locator("#run-left")).to_contain_text(re.compile(r"~\d+( min \d\d)? s left"))
                page.screenshot(path=str(ARTIFACTS / "live-progress.png"), full_page=True)
                expect(page.locator("#live-g0c1 td.stage")).to_contain_text(re.compile("training|evaluat|finished"))
                expect(page.locator("#generation-left")).to_contain_text("left")
                # when the run ends the page reloads without live rows and shows the finished generation
                expect(page.locator("#live-table")).to_have_count(0, timeout=180_000)
                expect(page.locator("#generations")).to_contain_text("finished")
            finally:
                browser.close()
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

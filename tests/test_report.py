"""HTML report and TensorBoard scalars (issue 7).

Two sources: a real small evolve (``small_real_run`` in conftest: real training, evaluation and
videos) for what a report must show, and a run directory built by hand in the run-store layout
(training statistics from the real ``TrainingStats``) for the awkward cases it must survive: a
failed candidate, a corrupt metrics.json, a pending candidate, an empty generation, LLM tokens,
hostile text. The browser tests open the reports in headless Debian chromium (skipped when
/usr/bin/chromium is missing) and save screenshots under tests/artifacts/.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rewardgen.envsteps import fmt
import torch

from rewardgen.inspect.report import lineage, load_run, write_report
from rewardgen.trainers.base import TrainingStats

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
TASK = {"id": "hopper-hop", "description": "Make the hopper hop forward.", "episode_length": 1000,
        "fitness": {"name": "forward_velocity", "params": {"body": "torso", "axis": "x"}},
        "success_threshold": 1.0, "default_steps": 300000, "env": "Hopper-v5"}


def training_stats(returns_slope: float, fitness_slope: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    stats = TrainingStats(10_000)
    for step in range(0, 10_000, 100):
        x = step / 10_000
        comps = {"forward": torch.tensor(rng.normal(x, 0.1, 8), dtype=torch.float32),
                 "alive": torch.ones(8),
                 "ctrl": torch.tensor(-0.1 * rng.random(8), dtype=torch.float32)}
        stats.record_step(step, ("__total__", *comps), torch.stack([sum(comps.values()), *comps.values()]))
        stats.record_episode(step, 100, 10 + returns_slope * x + rng.normal(0, 0.1), 0.2 + fitness_slope * x)
    return stats.summary()


REWARD = "import torch\n\ndef compute_reward(s):\n    f = s.body_linvel['torso'][:, 0]\n    return f, {'forward': f}\n"


def make_run(root: Path) -> Path:
    run = root / "20260101-000000-hopper-hop"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "id": run.name, "kind": "evolve", "status": "interrupted", "config": {"task": "hopper-hop", "samples": 3},
        "task": TASK, "proposer": "offline proposer", "tokens": {"prompt": 12345, "completion": 678},
        "generations": [], "best": {"generation": 1, "candidate": 0, "fitness": 0.61}}))

    def cand(g, c, metrics=None, proposal=None, raw_metrics=None):
        d = run / f"gen-{g:03d}" / f"cand-{c:02d}"
        d.mkdir(parents=True)
        (d / "reward.py").write_text(REWARD.replace("f,", f"f * {c + 1},"))
        (d / "proposal.json").write_text(json.dumps(proposal or {"origin": "fresh sample", "parent": None}))
        if metrics is not None:
            (d / "metrics.json").write_text(json.dumps(metrics))
        if raw_metrics is not None:
            (d / "metrics.json").write_text(raw_metrics)
        return d

    trajectories = {"best": {"summary": "best episode: seed 10001, lasted 1000 of 1000 steps."},
                    "worst": {"summary": "worst episode: seed 10002, torso fell 1 time(s)."}}
    cand(0, 0, {"status": "ok", "fitness": 0.42, "training": training_stats(5, 0.3), "env_steps": 10_000,
                "env_steps_per_second": 4000.0, "evaluation": {"fitness": 0.42, "fitness_std": 0.01}})
    cand(0, 1, {"status": "runtime", "fitness": None, "error": "ZeroDivisionError: float division (reward.py line 4)"})
    cand(0, 2, raw_metrics="{not json")
    cand(1, 0, {"status": "ok", "fitness": 0.61, "training": training_stats(8, 0.0, seed=1),
                "evaluation": {"fitness": 0.61, "trajectories": trajectories}},
         proposal={"origin": "mutation of 0/0", "parent": "0/0", "notes": ["raised forward weight"]})
    cand(1, 1)  # pending: reward.py only
    (run / "gen-002").mkdir()  # a generation that never got its proposals written
    return run


def test_report_contents(tmp_path):
    run = make_run(tmp_path)
    out = write_report(run)
    assert out == run / "report.html"
    text = out.read_text()
    # fitness per generation + two trained candidates, each with the components chart the web UI draws
    # and its reward against fitness through training
    assert text.count("<svg") == 5
    assert "<video" not in text  # no candidate here has a video file
    assert not re.search(r"""(src|href)=['"]https?:""", text)  # self-contained
    assert "12345" in text and "678" in text  # tokens
    assert "ZeroDivisionError" in text and "pending" in text
    assert "unreadable" in text and "metrics.json: unreadable" in text
    assert "possible reward hacking" in text  # g1c0's reward rose with flat fitness
    assert "torso fell 1 time(s)" in text  # the best candidate's trajectory summaries
    assert "<b>best episode</b>: seed 10001" in text and "best episode: best episode" not in text.replace(
        "</b>", "")  # said once
    assert "f * 1," in text  # the best reward's code
    _, gens, _ = load_run(run)
    assert [c.ref for c in lineage(gens, gens[1][0])] == ["g1c0", "g0c0"]
    assert "Which reward won, and why" in text and "winner is candidate <b>g1c0</b>" in text
    assert "runner-up, g0c0" in text and "identical to its parent g0c0" in text
    assert "forward_velocity(body=torso, axis=x)" in text and "{}" not in text.split("<h2>")[0]


def test_report_on_empty_and_broken_runs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    text = write_report(empty).read_text()
    assert "run.json is missing" in text and "none yet" in text
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "run.json").write_text(json.dumps({"status": "created", "task": TASK, "config": {}}))
    assert "no candidate has been evaluated yet" in write_report(fresh).read_text()
    # run.json is untrusted: a schedule that is a list (not a name) is shown as unknown, not a TypeError
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "run.json").write_text(json.dumps({"status": "created", "task": TASK, "config": {"schedule": ["x"]}}))
    assert "Schedule: [&#39;x&#39;]" in write_report(odd).read_text()
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "missing")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                   "(apt-get install -y chromium)")
@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    run = make_run(tmp_path)
    report = write_report(run)
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "report.png"
    png.unlink(missing_ok=True)
    flags = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = report.resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == 5  # the browser parsed every plot
    shot = subprocess.run([*flags, f"--screenshot={png}", "--window-size=1200,2000", url],
                          capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
    shutil.copy(report, ARTIFACTS / "report.html")
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[:2] == (2000, 1200)
    colours = len(np.unique(img.reshape(-1, 3), axis=0))
    non_white = float(np.mean(img.min(axis=2) < 240))
    assert colours > 50 and non_white > 0.03, (colours, non_white)
    # the fitness plot's green "best" line is drawn somewhere on the page
    green = np.all(np.abs(img.astype(int) - [0x1b, 0x78, 0x37]) < 40, axis=2)
    assert green.sum() > 50


def test_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from rewardgen.inspect.tensorboard import read_scalars, write_scalars

    metrics = {"status": "ok", "fitness": 0.5, "env_steps": 10_000, "env_steps_per_second": 1234.5,
               "train_seconds": 8.1, "evaluation": {"fitness": 0.5, "fitness_std": 0.05},
               "training": training_stats(8, 0.0), "extra": {"losses": {"policy_loss": -0.01, "value_loss": 0.3}}}
    logdir = write_scalars(tmp_path / "tb" / "gen-000-cand-00", metrics)
    scalars = read_scalars(logdir)
    for tag in ("components/forward", "components/alive", "components/ctrl", "reward/total", "episode/return",
                "episode/length", "episode/fitness", "fitness/trusted", "perf/env_steps_per_second",
                "loss/policy_loss", "loss/value_loss", "hacking/alarm"):
        assert tag in scalars, sorted(scalars)
    assert len(scalars["components/forward"]) == 10
    assert scalars["fitness/trusted"] == [(10_000, pytest.approx(0.5))]
    assert scalars["hacking/alarm"][0][1] == 1.0
    steps = [s for s, _ in scalars["episode/return"]]
    assert steps == sorted(steps) and steps[-1] <= 10_000
    write_scalars(tmp_path / "tb" / "failed", {"status": "runtime", "fitness": None})  # nothing to write, no error


# ------------------------------------------------------------------------------------------------
# the report of a real run
# ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_real_run_report_shows_videos_the_winner_and_the_schedule(small_real_run):
    run_dir, _ = small_real_run
    report = run_dir / "report.html"  # written by the run itself, not by this test
    text = report.read_text()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished"
    status_row = re.search(r"<td>status</td><td>([^<]*)</td>", text)
    assert status_row and status_row.group(1) == "finished"  # was "running": written before the final status
    # every candidate's rollout video: a <video> whose file exists, relative to the report
    srcs = re.findall(r"<video src=[\"']([^\"']+)", text)
    cands = sorted(run_dir.glob("gen-*/cand-*/video.mp4"))
    assert len(cands) == 6 and len(set(srcs)) == 6, (srcs, cands)
    for src in srcs:
        assert (report.parent / src).is_file() and (report.parent / src).stat().st_size > 1000, src
    # the winner, marked, and why
    best = run["best"]
    ref = f"g{best['generation']}c{best['candidate']}"
    assert f"winner is candidate <b>{ref}</b>" in text
    assert len(re.findall(r"class=[\"']winner[\"']", text)) >= 2 and "(the winner)" in text
    why = text[re.search(r"id=[\"']why[\"']", text).start():text.index("<h2>Fitness per generation")]
    assert "component shares" in why and "share of the reward" in why and "runner-up" in why
    assert why.count("best episode</b>") == 2  # trajectory summaries of winner and runner-up side by side
    assert "its diff" in why
    proposal = json.loads((run_dir / f"gen-{best['generation']:03d}" / f"cand-{best['candidate']:02d}"
                           / "proposal.json").read_text())
    if proposal.get("parent"):  # the offline proposer's children name their parent: the diff is against it
        pg, pc = re.fullmatch(r"g(\d+)c(\d+)", proposal["parent"]).groups()
        link = rf"against its parent <a href=[\"']#cand-{pg}-{pc}[\"']>{re.escape(proposal['parent'])}</a>"
        assert re.search(link, why), why
    else:
        assert "no parent: a fresh candidate" in why and "against its parent" not in why
    # the schedule: halving explained, each candidate's fate with its own budget
    assert "Successive halving" in text
    fates = [json.loads((d / "metrics.json").read_text()) for d in sorted(run_dir.glob("gen-*/cand-*"))]
    cut = [m for m in fates if m["fate"] == "eliminated"]
    assert cut, "halving with 3 candidates cuts some"
    for m in cut:
        assert f"cut by halving after rung {m['rungs']}: trained {fmt(m['env_steps'])} of 3k env-steps" in text
    # the setup in words, not a JSON dump; no LLM model for the offline proposer; fitness explained
    assert "gpt-4o-mini" not in text and '"llm_timeout"' not in text and "budget 3k env-steps" in text
    assert "alive_fraction</b>: fraction of the episode horizon survived" in text and "alive_fraction {}" not in text


@pytest.mark.slow
def test_real_report_in_chromium_plays_its_videos(small_real_run, tmp_path):
    """The report's <video> elements load in a real browser (duration > 0), and a screenshot is kept."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    run_dir, _ = small_real_run
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto((run_dir / "report.html").resolve().as_uri())
            durations = page.evaluate("""async () => Promise.all([...document.querySelectorAll('video')].map(v =>
                new Promise(resolve => {
                  if (v.readyState >= 1) return resolve(v.duration);
                  v.addEventListener('loadedmetadata', () => resolve(v.duration), {once: true});
                  v.addEventListener('error', () => resolve(-1), {once: true});
                  v.load();
                })))""")
            assert len(durations) >= 6 and all(d > 0 for d in durations), durations
            page.screenshot(path=str(ARTIFACTS / "report-real.png"), full_page=True)
            # the plots: tick labels of the env-step axes do not overlap
            boxes = page.evaluate("""() => [...document.querySelectorAll('.plot svg')].length""")
            assert boxes >= 7
        finally:
            browser.close()


def test_tensorboard_survives_a_component_name_with_a_surrogate(tmp_path):
    pytest.importorskip("tensorboard")
    from rewardgen.inspect.tensorboard import read_scalars, write_scalars

    training = training_stats(1, 1)
    training["components"] = {"odd\udcffname": training["components"]["forward"]}
    logdir = write_scalars(tmp_path / "tb", {"status": "ok", "fitness": 0.5, "env_steps": 10_000, "training": training})
    scalars = read_scalars(logdir)
    assert "components/odd\\udcffname" in scalars and "episode/return" in scalars  # logging went on after it


def test_report_escapes_hostile_text(tmp_path):
    run = make_run(tmp_path)
    m = run / "gen-000" / "cand-00" / "metrics.json"
    data = json.loads(m.read_text())
    data["training"]["components"]["<img src=x onerror=alert(1)>\udcff"] = data["training"]["components"]["forward"]
    data["error"] = "<script>alert(1)</script>"
    m.write_text(json.dumps(data))
    text = write_report(run).read_text()
    assert "<img src=x" not in text and "<script>alert" not in text and "&lt;img src=x" in text
    text.encode("utf-8")


def test_report_and_web_ui_render_a_candidate_through_one_card(tmp_path):
    """One rendering path: the report and the web UI's generation page show a candidate with the same
    card (same alarm, same escaped error and origin, the same components chart byte for byte)."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from test_feedback import fake_run

    from rewardgen.web import create_app

    run = fake_run(tmp_path / "runs", generations=2, samples=2)
    metrics = run / "gen-001" / "cand-00" / "metrics.json"
    m = json.loads(metrics.read_text())
    m["training"]["components"]["<b>x</b>\udcff"] = m["training"]["components"]["alive"]
    m |= {"status": "runtime", "error": "boom <script>alert(1)</script>",
          "hacking": {"message": "possible reward hacking: <i>return</i> rose, fitness flat"}}
    metrics.write_text(json.dumps(m))
    (run / "gen-001" / "cand-00" / "proposal.json").write_text(
        json.dumps({"origin": "llm <img src=x>", "parent": "0/0", "notes": []}))
    web = TestClient(create_app(run.parent), base_url="http://127.0.0.1").get(f"/runs/{run.name}/gen/1").text
    report = write_report(run).read_text()

    def card(text: str, key: str) -> str:
        start = text.index(f'id="cand-{key}"')
        return text[start:text.index('<details class="diff">', start)]

    w, r = card(web, "0"), card(report, "1-0")
    for part in ('<div class="flag hacking">&#9888; possible reward hacking: &lt;i&gt;return&lt;/i&gt; rose',
                 '<div class="err">boom &lt;script&gt;alert(1)&lt;/script&gt;</div>',
                 "origin: llm &lt;img src=x&gt;; parent g0c0", "&lt;b&gt;x&lt;/b&gt;\\udcff"):
        assert part in w and part in r, part
    chart = w[w.index('<div class="plot">'):w.index("</svg>") + 6]
    assert chart in r
    assert "<script>alert" not in web + report and "<img src=x" not in web + report

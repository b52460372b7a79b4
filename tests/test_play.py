"""``rewardgen play RUN [--candidate g1c3]``: a video of the trained policy, and a window where a display exists.

One real run (inverted pendulum, 2 candidates, 3000 env-steps). The default rollout is the trusted
evaluation's first episode, so its length is the one the evaluator measured; the window runs MuJoCo's
viewer on a real X server (Xvfb) when one is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import cli, last_json


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("play") / "runs"
    res = cli("evolve", "--task", "inverted-pendulum-balance", "--samples", "2", "--generations", "1", "--steps",
              "3000", "--no-video", "--llm", "offline", "--runs-dir", str(runs), "--json", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return Path(last_json(res.stdout)["run_dir"])


def _one_line(res, needle: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert len(res.stderr.strip().splitlines()) == 1 and needle in res.stderr, res.stderr


@pytest.mark.slow
def test_play_writes_the_evaluated_episode_as_a_video(trained_run: Path, tmp_path: Path) -> None:
    import imageio.v2 as imageio

    run = json.loads((trained_run / "run.json").read_text())
    g, c = run["best"]["generation"], run["best"]["candidate"]
    res = cli("play", str(trained_run), "--no-window", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    video = tmp_path / f"{trained_run.name}-g{g}c{c}.mp4"
    assert video.is_file() and str(video.name) in res.stdout
    assert res.stdout.startswith(f"g{g}c{c} of {trained_run.name}")
    with imageio.get_reader(video) as reader:
        frames = [frame for frame in reader]
    assert len(frames) > 1 and frames[0].shape[2] == 3 and frames[0].std() > 1  # a picture, not a blank
    # the default seed is the evaluation's: an episode that ended early ends at the same step
    first = json.loads((trained_run / f"gen-{g:03d}/cand-{c:02d}/metrics.json").read_text())["evaluation"]["episodes"][0]
    steps = int(res.stdout.split(": ", 1)[1].split(" steps")[0])
    if first["terminated"] and first["length"] * 0.04 < 10:
        assert steps == first["length"], (steps, first)

    # the other candidate by either label, to a file of one's own; the same file again needs --force
    for label in ("0/1", "g0c1"):
        out = tmp_path / f"other-{label.replace('/', '-')}.mp4"
        res = cli("play", str(trained_run), "--candidate", label, "-o", str(out), "--seconds", "1", "--no-window")
        assert res.returncode == 0 and out.is_file() and res.stdout.startswith("g0c1 "), res.stderr
    before = out.read_bytes()
    _one_line(cli("play", str(trained_run), "--candidate", "g0c1", "-o", str(out), "--no-window"), "--force")
    assert out.read_bytes() == before

    # bad input: one line, exit 2, nothing written
    for args, needle in ((["--candidate", "g0c7"], "no candidate g0c7"), (["--candidate", "1-3"], "named like g1c3"),
                         (["--candidate", "g3c0"], "no generation 3"), (["-o", str(tmp_path / "v.gif")], ".mp4"),
                         (["-o", str(tmp_path / "missing" / "v.mp4")], "does not exist"),
                         (["--seconds", "0"], "positive"), (["--window"], "needs a display")):
        env = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}
        _one_line(cli("play", str(trained_run), *args, cwd=tmp_path, env=env), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([video.name, "other-0-1.mp4", "other-g0c1.mp4"])
    _one_line(cli("play", str(tmp_path / "no-run")), "no run directory")


@pytest.mark.slow
def test_play_shows_a_window_when_a_display_exists(trained_run: Path, tmp_path: Path) -> None:
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is missing (apt-get install xvfb; scripts/setup-tests.sh installs it)")
    display = f":{os.getpid() % 500 + 100}"
    server = subprocess.Popen([xvfb, display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{display[1:]}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        res = cli("play", str(trained_run), "--seconds", "1", "-o", str(tmp_path / "w.mp4"), cwd=tmp_path,
                  env={"DISPLAY": display}, timeout=300)
    finally:
        server.terminate()
        server.wait(10)
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("shown in a window"))
    assert int(line.split(": ")[1].split()[0]) > 0, line
    assert (tmp_path / "w.mp4").is_file()

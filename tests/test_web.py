"""The web UI through FastAPI's TestClient: pages, videos with Range, forms, errors, traversal, token, jobs."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from rewardgen.run import feedback  # noqa: E402
from rewardgen.store import atomic_write_json  # noqa: E402
from rewardgen.web import JobError, Jobs, check_bind, create_app, serve  # noqa: E402
from test_feedback import fake_run  # noqa: E402

RID = "20260101-000000-fake"


class Client(TestClient):
    """A TestClient addressed as the server is (http://127.0.0.1), with ``form`` for a POST that
    carries the server's CSRF token like the pages' forms do (``post`` sends exactly what it is given)."""

    def __init__(self, app, **kw):
        kw.setdefault("base_url", "http://127.0.0.1")
        super().__init__(app, **kw)

    def form(self, url: str, data: dict | None = None, **kw):
        return self.post(url, data={**(data or {}), "csrf": self.app.state.csrf}, **kw)
FAKE_MP4 = b"\x00\x00\x00\x20ftypisom" + bytes(range(256)) * 8


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    run = fake_run(d, generations=2, samples=2)
    (run / "gen-000" / "cand-00" / "video.mp4").write_bytes(FAKE_MP4)
    return d


@pytest.fixture
def started() -> list[Path]:
    return []


@pytest.fixture
def client(runs: Path, started: list[Path]) -> Client:
    return Client(create_app(runs, start_next=started.append), follow_redirects=False)


def test_pages_show_runs_generations_and_candidates(client: Client) -> None:
    r = client.get("/")
    assert r.status_code == 200 and RID in r.text and "inverted-pendulum-balance" in r.text
    r = client.get(f"/runs/{RID}")
    assert r.status_code == 200 and "<svg" in r.text and "trusted fitness per generation" in r.text
    assert f"/runs/{RID}/gen/1" in r.text
    r = client.get(f"/runs/{RID}/gen/1")
    assert r.status_code == 200
    assert "candidate g1c0" in r.text and "candidate g1c1" in r.text and "reward components" in r.text
    assert "diff against parent g0c0" in r.text and '<span class="del">-    w = 0.0</span>' in r.text
    assert '<span class="add">+    w = 1.0</span>' in r.text
    assert "no video" in r.text and 'name="best"' in r.text
    r = client.get(f"/runs/{RID}/gen/0")
    assert f'src="/runs/{RID}/gen/0/cand/0/video.mp4"' in r.text and "no parent" in r.text


def test_video_is_served_as_mp4_with_range_requests(client: Client) -> None:
    url = f"/runs/{RID}/gen/0/cand/0/video.mp4"
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4" and r.content == FAKE_MP4
    assert r.headers.get("accept-ranges") == "bytes"
    r = client.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == FAKE_MP4[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(FAKE_MP4)}"
    r = client.get(url, headers={"Range": "bytes=-16"})
    assert r.status_code == 206 and r.content == FAKE_MP4[-16:]
    assert client.get(f"/runs/{RID}/gen/0/cand/1/video.mp4").status_code == 404  # finished, no video
    assert client.get(f"/runs/{RID}/gen/0/cand/5/video.mp4").status_code == 404


@pytest.mark.parametrize("url", [
    "/runs/..%2F..%2Fetc", "/runs/%2e%2e", "/runs/%2Fetc%2Fpasswd", "/runs/a%00b",
    f"/runs/{RID}/gen/..%2F..%2Frun.json", f"/runs/{RID}/gen/-1", f"/runs/{RID}/gen/1e3", f"/runs/{RID}/gen/0x1",
    f"/runs/{RID}/gen/0/cand/..%2F..%2F..%2Frun.json/video.mp4", f"/runs/{RID}/gen/0/cand/-1/video.mp4",
    f"/runs/{RID}/gen/0/cand/0%2F..%2F1/video.mp4", "/runs/nope", "/runs/nope/progress.json",
    "/runs/..%2F..%2F..%2F..%2Fetc%2Fpasswd/gen/0/cand/0/video.mp4", "/static/..%2F..%2Fetc/passwd",
    f"/runs/{RID}/gen/0/cand/9", f"/runs/{RID}/gen/7/cand/0", f"/runs/{RID}/gen/0/cand/-1", f"/runs/{RID}/gen/0/cand/1e2",
    f"/runs/{RID}/gen-000/..%2F..%2Frun.json/video.mp4", f"/runs/{RID}/gen-0/cand-00/video.mp4",
    f"/runs/{RID}/gen-000/cand-0/video.mp4", f"/runs/{RID}/gen-000/cand-01/video.mp4", f"/runs/{RID}/x/y/video.mp4",
    "/runs/nope/report",
])
def test_traversal_and_unknown_paths_are_404_html(client: Client, url: str) -> None:
    r = client.get(url)
    assert r.status_code == 404, (url, r.status_code)
    assert r.headers["content-type"].startswith("text/html") and "root:" not in r.text


@pytest.mark.parametrize("name", ["..", ".", "", "../x", "/etc", "a/b", "a\\b", ".hidden", "x" * 300])
def test_run_names_are_checked_before_any_path_is_built(runs: Path, name: str) -> None:
    """Dot segments never reach the app through HTTP (clients and servers normalise them); the check
    that would stop them is tested directly."""
    from rewardgen.web.app import Runs, WebError

    with pytest.raises(WebError) as info:
        Runs(runs).store(name)
    assert info.value.status == 404


def test_symlinks_out_of_the_runs_dir_are_refused(tmp_path: Path, runs: Path) -> None:
    outside = fake_run(tmp_path / "elsewhere", run_id="20260101-000000-outside")
    (runs / "linked").symlink_to(outside)
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"secret")
    video = runs / RID / "gen-000" / "cand-01" / "video.mp4"
    video.symlink_to(secret)
    client = Client(create_app(runs))
    assert client.get("/runs/linked").status_code == 404
    r = client.get(f"/runs/{RID}/gen/0/cand/1/video.mp4")
    assert r.status_code == 404 and b"secret" not in r.content


def test_text_feedback_is_stored_and_escaped(client: Client, runs: Path) -> None:
    r = client.form(f"/runs/{RID}/feedback", data={"text": "<script>alert(1)</script> less wobble", "candidate": "1/1",
                                                   "return_gen": "1"})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/runs/{RID}/gen/1?msg=")
    items = feedback.load(runs / RID)
    assert items[0]["text"] == "<script>alert(1)</script> less wobble" and items[0]["candidate"] == "g1c1"
    page = client.get(r.headers["location"]).text
    assert "saved" in page and "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    r = client.form(f"/runs/{RID}/feedback", data={"text": "general note"})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/runs/{RID}?msg=")
    assert len(feedback.load(runs / RID)) == 2


@pytest.mark.parametrize("path, data, status, message", [
    ("feedback", {"text": ""}, 400, "feedback text is empty"),
    ("feedback", {}, 400, "feedback text is empty"),
    ("feedback", {"text": "x" * 4001}, 400, "the limit is 4000"),
    ("feedback", {"text": "ok", "candidate": "7/0"}, 400, "generation 7 does not exist"),
    ("feedback", {"text": "ok", "candidate": "../../x"}, 400, "bad candidate reference"),
    ("prefer", {"generation": "0", "best": "1", "worst": "1"}, 400, "same candidate"),
    ("prefer", {"generation": "0"}, 400, "choose the best candidate"),
    ("prefer", {"generation": "0", "best": "9"}, 400, "does not exist"),
    ("prefer", {"generation": "x", "best": "0"}, 400, "must be a number"),
    ("prefer", {"generation": "5", "best": "0"}, 400, "does not exist"),
    # numbers as the page's URLs spell them, nothing int() would also read ("+1", " 0", Arabic-Indic digits)
    ("prefer", {"generation": "1", "best": "+1"}, 400, "best must be a number"),
    ("prefer", {"generation": "1", "best": "1", "worst": " 0"}, 400, "worst must be a number"),
    ("prefer", {"generation": "\u0661", "best": "0"}, 400, "generation must be a number"),
])
def test_bad_forms_get_a_clear_4xx_page_and_change_nothing(client: Client, runs: Path, path: str, data: dict,
                                                           status: int, message: str) -> None:
    r = client.form(f"/runs/{RID}/{path}", data=data)
    assert r.status_code == status and message in r.text and r.headers["content-type"].startswith("text/html")
    assert not (runs / RID / "feedback.json").exists()


def test_forms_on_unknown_runs_and_oversized_bodies(client: Client) -> None:
    r = client.form("/runs/nope/feedback", data={"text": "hi"})
    assert r.status_code == 404 and "no run named" in r.text
    r = client.form("/runs/..%2F..%2Fetc/prefer", data={"generation": "0", "best": "0"})
    assert r.status_code == 404
    r = client.form(f"/runs/{RID}/feedback", data={"text": "x" * 70_000})
    assert r.status_code == 413 and "too large" in r.text


def test_preference_is_stored(client: Client, runs: Path) -> None:
    r = client.form(f"/runs/{RID}/prefer", data={"generation": "1", "best": "1", "worst": "0"})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/runs/{RID}/gen/1?msg=")
    [item] = feedback.load(runs / RID)
    assert (item["kind"], item["generation"], item["best"], item["worst"]) == ("preference", 1, 1, 0)
    assert "best g1c1, worst g1c0" in client.get(f"/runs/{RID}/gen/1").text


def test_unfinished_generation_cannot_be_ranked(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    fake_run(runs, generations=1, samples=2, proposed_only=1, status="running")
    client = Client(create_app(runs), follow_redirects=False)
    page = client.get(f"/runs/{RID}/gen/1").text
    assert "in progress" in page and 'id="prefer"' not in page and "training..." in page
    r = client.form(f"/runs/{RID}/prefer", data={"generation": "1", "best": "0"})
    assert r.status_code == 400 and "has not finished" in r.text
    p = client.get(f"/runs/{RID}/progress.json").json()
    assert (p["current_generation"], p["candidates_total"], p["candidates_finished"]) == (1, 2, 0)
    assert p["generations_finished"] == 1 and p["status"] == "running"


def test_concurrent_form_submissions_lose_nothing(runs: Path) -> None:
    app = create_app(runs)
    errors: list[str] = []

    def submit(i: int) -> None:
        with Client(app, follow_redirects=False) as c:
            for j in range(4):
                r = c.form(f"/runs/{RID}/feedback", data={"text": f"t{i}-{j}"})
                if r.status_code != 303:
                    errors.append(r.text)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(x["text"] for x in feedback.load(runs / RID)) == sorted(f"t{i}-{j}" for i in range(6) for j in range(4))


def test_next_calls_start_next_and_shows_refusals(runs: Path, started: list[Path], client: Client) -> None:
    r = client.form(f"/runs/{RID}/next")
    assert r.status_code == 303 and started == [(runs / RID).resolve()]

    def busy(run_dir: Path) -> None:
        raise JobError("the next generation is already running")

    c2 = Client(create_app(runs, start_next=busy), follow_redirects=False)
    r = c2.form(f"/runs/{RID}/next")
    assert r.status_code == 409 and "already running" in r.text
    assert c2.form("/runs/nope/next").status_code == 404


def test_default_jobs_extend_a_finished_run_and_refuse_a_second_start(tmp_path: Path, runs: Path) -> None:
    fake_python = tmp_path / "fake-python"
    fake_python.write_text("#!/bin/sh\necho \"resume $4\"\nsleep 1.5\n")
    fake_python.chmod(0o755)
    jobs = Jobs(python=str(fake_python))
    run = runs / RID
    jobs.start_next(run)
    data = json.loads((run / "run.json").read_text())
    assert data["config"]["generations"] == 3 and data["status"] == "queued"
    with pytest.raises(JobError, match="already running"):
        jobs.start_next(run)
    status = jobs.status(run)
    assert status["running"]
    jobs.wait_all(10)
    assert jobs.status(run)["returncode"] == 0 and any("resume" in ln for ln in jobs.status(run)["log_tail"])
    # an interrupted run is resumed as it is
    atomic_write_json(run / "run.json", dict(data, status="interrupted"))
    jobs.start_next(run)
    assert json.loads((run / "run.json").read_text())["config"]["generations"] == 3
    jobs.wait_all(10)
    # a run another process holds (e.g. `rewardgen evolve --interactive` waiting in a terminal) is refused
    fd = os.open(run / "run.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(JobError, match="in use by another rewardgen process"):
            jobs.start_next(run)
        assert Client(create_app(runs)).get(f"/runs/{RID}/progress.json").json()["busy"] is True
    finally:
        os.close(fd)


def test_token_is_required_on_every_request(runs: Path) -> None:
    client = Client(create_app(runs, token="s3cret"), follow_redirects=False)
    for url in ("/", f"/runs/{RID}", f"/runs/{RID}/gen/0/cand/0/video.mp4", f"/runs/{RID}/progress.json"):
        assert client.get(url).status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    assert client.form(f"/runs/{RID}/feedback", data={"text": "hi"}).status_code == 401
    assert not (runs / RID / "feedback.json").exists()
    r = client.get("/?token=s3cret")
    assert r.status_code == 200 and "rewardgen_token" in r.headers["set-cookie"]
    assert "httponly" in r.headers["set-cookie"].lower()
    assert client.get(f"/runs/{RID}").status_code == 200  # the cookie now carries it
    assert client.form(f"/runs/{RID}/feedback", data={"text": "hi"}).status_code == 303


def test_non_loopback_bind_needs_a_token() -> None:
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "tok")
    with pytest.raises(ValueError, match="without a token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ValueError, match="without a token"):
        serve(Path("."), host="192.168.1.5", port=1, token=None)


def test_cross_site_posts_are_refused(client: Client, runs: Path, started: list[Path]) -> None:
    url = f"/runs/{RID}/feedback"
    for origin in ("http://evil.example", "null", "NULL", "http://127.0.0.1.evil.example", "file://",
                   "http://localhost.evil.example:8000"):
        r = client.form(url, data={"text": "hi"}, headers={"Origin": origin})
        assert r.status_code == 403 and "refused" in r.text, origin
    # `Origin: null` (sandboxed iframe, data: or file: page) must not start training either
    assert client.form(f"/runs/{RID}/next", headers={"Origin": "null"}).status_code == 403
    r = client.form(url, data={"text": "hi"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert not (runs / RID / "feedback.json").exists() and started == []
    r = client.form(url, data={"text": "hi"}, headers={"Origin": "http://127.0.0.1"})
    assert r.status_code == 303


def test_state_changing_requests_need_the_servers_csrf_token(client: Client, runs: Path,
                                                             started: list[Path]) -> None:
    url = f"/runs/{RID}/feedback"
    for data in ({"text": "hi"}, {"text": "hi", "csrf": ""}, {"text": "hi", "csrf": "x" * 43}):
        r = client.post(url, data=data)
        assert r.status_code == 403 and "CSRF token" in r.text
    assert client.post(f"/runs/{RID}/next").status_code == 403
    assert client.post(f"/runs/{RID}/prefer", data={"generation": "1", "best": "1"}).status_code == 403
    # another server (another start) has another token
    other = create_app(runs)
    assert other.state.csrf != client.app.state.csrf
    assert client.post(url, data={"text": "hi", "csrf": other.state.csrf}).status_code == 403
    assert not (runs / RID / "feedback.json").exists() and started == []
    # every form on the pages carries the token, so the UI itself works
    page = client.get(f"/runs/{RID}/gen/1").text
    forms = page.count("<form ")
    assert forms >= 3 and page.count(f'name="csrf" value="{client.app.state.csrf}"') == forms
    assert client.post(url, data={"text": "hi"}, headers={"X-CSRF-Token": client.app.state.csrf}).status_code == 303


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:8765", True), ("localhost:8765", True), ("[::1]:8765", True), ("LOCALHOST:8765", True),
    ("127.0.0.1:8000", False), ("evil.example:8765", False), ("evil.example", False), ("", False),
    ("127.0.0.1.nip.io:8765", False), ("user@127.0.0.1:8765", False), ("127.0.0.1:8765/x", False),
])
def test_host_header_is_checked_against_the_served_address(runs: Path, host: str, ok: bool) -> None:
    """DNS rebinding: a foreign name that resolves to 127.0.0.1 reaches the server with its own Host."""
    client = Client(create_app(runs, host="127.0.0.1", port=8765), follow_redirects=False)
    for method, url in (("GET", "/"), ("GET", f"/runs/{RID}"), ("GET", f"/runs/{RID}/progress.json"),
                        ("POST", f"/runs/{RID}/feedback")):
        data = {"text": "hi", "csrf": client.app.state.csrf} if method == "POST" else None
        r = client.request(method, url, data=data, headers={"Host": host})
        if ok:
            assert r.status_code == (303 if method == "POST" else 200), (method, url, r.status_code)
        else:
            assert r.status_code == 421 and RID not in r.text, (method, url, r.status_code)
    assert (runs / RID / "feedback.json").exists() == ok


def test_configured_host_and_wildcard_bind() -> None:
    from rewardgen.web.app import host_checker

    named = host_checker("rig.lab.example", 8000)
    assert named("rig.lab.example:8000") and named("127.0.0.1:8000") and not named("other.example:8000")
    assert host_checker("0.0.0.0", 8000)("anything:1")  # needs --token, checked by check_bind


def test_bodies_are_bounded_while_streaming(client: Client, runs: Path) -> None:
    """No Content-Length (a chunked body): the limit holds on the bytes actually read."""
    sent = []

    def body():
        chunk = b"text=" + b"x" * 16_379
        for _ in range(64):  # 1 MiB offered
            sent.append(len(chunk))
            yield chunk
            chunk = b"x" * 16_384

    r = client.post(f"/runs/{RID}/feedback", content=body(),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and "too large" in r.text and sum(sent) == 2**20  # (TestClient sends it all)
    assert not (runs / RID / "feedback.json").exists()
    # a lying Content-Length does not help either
    r = client.post(f"/runs/{RID}/feedback", content=b"text=" + b"y" * 100_000,
                    headers={"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "10"})
    assert r.status_code == 413 and "too large" in r.text and not (runs / RID / "feedback.json").exists()


def test_a_real_server_stops_reading_a_huge_chunked_body(runs: Path) -> None:
    """Against uvicorn over a socket: 64 MiB offered in chunks, the server answers 413 and hangs up
    long before it has all of it."""
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(runs, port=port)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert server.started
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        head = (f"POST /runs/{RID}/feedback HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.sendall(head.encode())
        chunk = b"%x\r\n" % 65536 + b"x" * 65536 + b"\r\n"
        sent = 0
        try:
            for _ in range(1024):  # 64 MiB
                sock.sendall(chunk)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        answer = b""
        try:
            while b"\r\n" not in answer:
                part = sock.recv(4096)
                if not part:
                    break
                answer += part
        except (ConnectionResetError, socket.timeout):
            pass
        sock.close()
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 32 * 2**20, sent  # it hung up: the socket buffers, not the server, took the rest
        assert not (runs / RID / "feedback.json").exists()
    finally:
        server.should_exit = True
        thread.join(10)


def test_corrupt_runs_are_listed_not_fatal(runs: Path, client: Client) -> None:
    bad = runs / "20260101-bad"
    bad.mkdir()
    (bad / "run.json").write_text("{oops")
    r = client.get("/")
    assert r.status_code == 200 and "corrupt run.json" in r.text
    assert client.get("/runs/20260101-bad").status_code == 500
    (runs / RID / "feedback.json").write_text("nope")
    r = client.get(f"/runs/{RID}")
    assert r.status_code == 200 and "corrupt feedback file" in r.text


def test_untrusted_text_with_surrogates_and_markup_renders(client: Client, runs: Path) -> None:
    """A component name with a lone surrogate (json.loads gives one for "\\udcff") used to turn the
    generation page into a 500; reward errors and names are shown escaped, never as markup."""
    d = runs / RID / "gen-001" / "cand-00"
    m = json.loads((d / "metrics.json").read_text())
    curve = m["training"]["components"]["alive"]
    m["training"]["components"] = {"bad\udcffname": curve, "<b>bold</b>": curve}
    m["status"], m["error"] = "runtime", "boom \udcfe <script>alert(1)</script>"
    (d / "metrics.json").write_text(json.dumps(m))
    (d / "proposal.json").write_text(json.dumps({"origin": "llm \ud800 <i>x</i>", "parent": "0/0", "notes": ["\udcff"]}))
    r = client.get(f"/runs/{RID}/gen/1")
    assert r.status_code == 200, r.text[-500:]
    assert "bad\\udcffname" in r.text and "boom \\udcfe &lt;script&gt;" in r.text and "llm \\ud800 &lt;i&gt;" in r.text
    assert "<script>alert" not in r.text and "<b>bold" not in r.text and "&lt;b&gt;bold&lt;/b&gt;" in r.text
    assert 'id="prefer"' in r.text  # the preference form is still there
    assert client.get(f"/runs/{RID}").status_code == 200


def test_run_page_says_budget_and_halving_and_draws_the_threshold(runs: Path) -> None:
    run = json.loads((runs / RID / "run.json").read_text())
    run["config"] |= {"steps": 1_000_000, "schedule": "halving", "samples": 4}
    run["task"] |= {"success_threshold": 0.9, "fitness": {"name": "alive_fraction", "params": {}}}
    atomic_write_json(runs / RID / "run.json", run)
    text = Client(create_app(runs)).get(f"/runs/{RID}").text
    assert "1000000 training steps each" not in text and "budget 1M training env-steps per candidate" in text
    assert "successive halving" in text and "cut early" in text
    assert "success threshold (0.9)" in text and 'class="hline"' in text
    assert "trusted fitness (alive_fraction)" in text
    # every generation gets a tick label, not only the first and the last
    chart = text[text.index('<svg'):text.index('</svg>')]
    assert chart.count('text-anchor="middle">0</text>') == 1 and chart.count('text-anchor="middle">1</text>') == 1


def test_job_log_tail_shows_only_the_latest_job_and_each_line_once(tmp_path: Path) -> None:
    from rewardgen.web.jobs import tail

    log = tmp_path / "web-job.log"
    log.write_text("\n--- 2026-01-01 rewardgen resume\ngeneration 0 done: best 1\nold line\n"
                   "\n--- 2026-01-02 rewardgen resume\ngeneration 0: already finished\n"
                   "gen 1 cand 0 training\rgen 1 cand 0 fitness 0.5\ngeneration 1 done: best 0\n"
                   "generation 1 done: best 0\n")
    assert tail(tmp_path) == ["--- 2026-01-02 rewardgen resume", "generation 0: already finished",
                         "gen 1 cand 0 fitness 0.5", "generation 1 done: best 0"]


def test_candidate_page_shows_code_diff_curves_and_a_feedback_form(client: Client, runs: Path) -> None:
    r = client.get(f"/runs/{RID}/gen/1")
    assert f'href="/runs/{RID}/gen/1/cand/0"' in r.text and f'href="/runs/{RID}/gen/1/cand/1"' in r.text
    r = client.get(f"/runs/{RID}/gen/1/cand/1")
    assert r.status_code == 200 and "Candidate g1c1" in r.text
    assert "w = 1.1" in r.text and '<span class="add">+    w = 1.1</span>' in r.text  # code and diff
    assert f'href="/runs/{RID}/gen/0/cand/0" id="parent-link">g0c0</a>' in r.text
    assert "<svg" in r.text and "reward components" in r.text
    assert 'name="return_cand" value="1"' in r.text and 'name="candidate" value="g1c1"' in r.text
    assert f'href="/runs/{RID}/gen/1/cand/0">&larr; previous candidate' in r.text
    r = client.form(f"/runs/{RID}/feedback", data={"text": "hops <i>sideways</i>", "candidate": "g1c1",
                                                   "return_gen": "1", "return_cand": "1"})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/runs/{RID}/gen/1/cand/1?msg=")
    r = client.get(r.headers["location"])
    assert "hops &lt;i&gt;sideways&lt;/i&gt;" in r.text and "<i>sideways" not in r.text
    # feedback about another candidate is not listed here
    client.form(f"/runs/{RID}/feedback", data={"text": "about the other one", "candidate": "1/0"})
    assert "about the other one" not in client.get(f"/runs/{RID}/gen/1/cand/1").text


def test_report_is_rendered_by_rewardgen_not_read_from_the_run(client: Client, runs: Path) -> None:
    run = runs / RID
    (run / "report.html").write_text("<script>document.title='owned'</script>PLANTED")
    r = client.get(f"/runs/{RID}")
    assert f'href="/runs/{RID}/report" id="report-link"' in r.text
    r = client.get(f"/runs/{RID}/report")
    assert r.status_code == 200 and "PLANTED" not in r.text and "<script" not in r.text and RID in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "default-src 'none'" in csp and "form-action 'none'" in csp
    assert 'src="gen-000/cand-00/video.mp4"' in r.text  # relative to /runs/RID/, served below
    v = client.get(f"/runs/{RID}/gen-000/cand-00/video.mp4")
    assert v.status_code == 200 and v.content == FAKE_MP4


def _hold_lock(run: Path) -> int:
    fd = os.open(run / "run.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_live_progress_shows_while_a_process_holds_the_run_and_escapes_its_text(client: Client, runs: Path) -> None:
    import time

    run = runs / RID
    now = time.time()
    atomic_write_json(run / "live.json", {
        "version": 1, "updated": now - 5, "phase": "training", "generation": 2,
        "candidates": [
            {"candidate": 0, "stage": "training", "steps": 1500, "target": 3000, "rung": 0, "rungs": 2},
            {"candidate": 1, "stage": "failed", "steps": 0, "target": 3000, "error": "<script>alert(1)</script>\x1b[2J"},
            "junk", {"candidate": "x"}, {"candidate": 2, "steps": "many", "target": None, "fitness": "high"}],
        "generation_env_steps": {"done": 1500, "planned": 6000}, "generation_seconds_left": 65,
        "estimate": {"seconds_left": 125, "basis": "measured", "at": now - 5}})
    assert client.get(f"/runs/{RID}/progress.json").json()["live"] is None  # nobody works on it: stale
    fd = _hold_lock(run)
    try:
        p = client.get(f"/runs/{RID}/progress.json").json()
        assert p["busy"] and [r["label"] for r in p["live"]["rows"]] == ["g2c0", "g2c1", "g2c2"]
        html = p["live_html"]
        assert 'id="live-g2c0"' in html and "1.5k / 3k" in html and "rung 1 of 2" in html
        assert "~1 min 0" in html and "~2 min 0" in html  # counted down from when it was written
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
        page = client.get(f"/runs/{RID}").text
        assert 'id="live-g2c1"' in page and f'href="/runs/{RID}/gen/2/cand/0"' in page
        for junk in ([], "text", {"candidates": {"a": 1}, "estimate": [], "generation": "2"}):
            atomic_write_json(run / "live.json", junk)
            assert client.get(f"/runs/{RID}/progress.json").status_code == 200
            assert client.get(f"/runs/{RID}").status_code == 200
    finally:
        os.close(fd)

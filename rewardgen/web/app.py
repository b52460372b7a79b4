"""The web UI: runs, generations side by side (videos, fitness, component curves, reward diffs), feedback.

Server-rendered pages (Jinja2 templates in ``templates/``; the candidate card, the Jinja environment
and the SVG charts are shared with ``report.html`` in ``rewardgen.inspect.pages`` and ``.charts``); the only
JavaScript polls ``/runs/<id>/progress.json`` while a generation is being trained. Live progress is
the working process's ``live.json`` (``rewardgen.run.progress.LiveFile``: the same events the terminal
shows, folded per candidate), rendered here by ``_live.html`` with the page's escaping, so a run
started in a terminal shows its bars in the browser too. The report is rendered on request by
``rewardgen.inspect.report.render_html`` (never the ``report.html`` file of a run directory someone
else made), under a Content-Security-Policy that allows no script.

Routes::

    GET  /                                   runs list
    GET  /runs/{run}                         fitness per generation, feedback given, "next generation"
    GET  /runs/{run}/gen/{g}                 the generation's candidates side by side
    GET  /runs/{run}/gen/{g}/cand/{c}        one candidate: video, curves, code, diff, evaluation, feedback
    GET  /runs/{run}/gen/{g}/cand/{c}/video.mp4   the rollout video (Range requests supported)
    GET  /runs/{run}/report                  the run's HTML report, rendered now from the run's files
    GET  /runs/{run}/gen-NNN/cand-NN/video.mp4    the same videos where the report's relative links point
    GET  /runs/{run}/progress.json           status, finished candidates, background job, and while a
                                             process works on the run its live per-candidate progress
    POST /runs/{run}/feedback                text (+ optional candidate "G/C")
    POST /runs/{run}/prefer                  generation, best, worst
    POST /runs/{run}/next                    start the next generation in the background

Every path parameter is checked against a strict pattern and resolved inside ``runs_dir`` before any
file is touched, so ``..``, absolute paths, symlinks out of the run and encoded variants get a 404.
Bad input gets a 4xx HTML page that says what was wrong; nothing is written. With a token, every
request must carry it (``?token=`` once, then the cookie this sets) or it gets a 401.

Protection of the local server (it can save feedback that reaches the next LLM prompt and start
training jobs):

- ``Host``: a request must name the server as it was bound (``127.0.0.1``, ``localhost`` or ``[::1]``
  with its port, or the ``--host`` given); anything else gets a 421, so a foreign site whose name
  resolves to 127.0.0.1 (DNS rebinding) can neither read pages nor post. A wildcard bind
  (``0.0.0.0``, ``::``) needs a token and accepts any name.
- State-changing requests (every POST) need the per-server CSRF token that each form carries (a new
  random one each time the server starts), and are refused when ``Origin`` is ``null`` (sandboxed
  iframes, ``data:`` and ``file:`` pages) or names another site, or ``Sec-Fetch-Site`` says
  cross-site.
- Bodies are bounded while they are read (``MAX_BODY`` bytes, chunked bodies included), not by
  trusting ``Content-Length``.

Every value a template shows goes through ``rewardgen.safetext.html`` (the Jinja ``finalize`` that
``rewardgen.inspect.pages.environment`` sets), so
component names with lone surrogates, reward errors and feedback are escaped in one place.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from rewardgen.errors import flatten
from rewardgen.inspect.charts import fitness_chart
from rewardgen.inspect.pages import as_dict, as_list, card, environment, reward_diff
from rewardgen.run import feedback
from rewardgen.run.feedback import FeedbackError, parse_ref, proposed_generations
from rewardgen.runfiles import RunFiles
from rewardgen.store import (
    GENERATION_FILE,
    MAX_SOURCE_BYTES,
    METRICS_FILE,
    PROPOSAL_FILE,
    REWARD_FILE,
    RUN_FILE,
    VIDEO_FILE,
    VIDEO_INFO_FILE,
    CorruptFileError,
    GenerationRecord,
    RunStore,
    RunStoreError,
    as_label,
    cand_dirname,
    candidate_label,
    gen_dirname,
)
from rewardgen.web.jobs import JobError, Jobs

TEMPLATES = Path(__file__).resolve().parent / "templates"
TOKEN_COOKIE = "rewardgen_token"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
NUMBER = re.compile(r"^[0-9]{1,6}$")
MAX_BODY = 64 * 1024
MAX_SOURCE_SHOWN = 200_000
#: the report page: its own styles and the run's videos, no script of any kind, no frames, no forms
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; media-src 'self'; "
              "script-src 'none'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class WebError(Exception):
    """An error page: HTTP status and a message for the user."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# ----- reading the run store (read-only; validation first)
def _number(raw: str, what: str) -> int:
    if not NUMBER.match(str(raw)):
        raise WebError(404, f"{what} must be a number, got {raw!r}")
    return int(raw)


class Runs:
    def __init__(self, runs_dir: Path):
        self.root = Path(runs_dir).resolve()

    def store(self, run_id: str) -> RunStore:
        if not RUN_ID.match(run_id or "") or ".." in run_id:
            raise WebError(404, f"no run named {run_id!r}")
        path = (self.root / run_id).resolve()
        if path.parent != self.root or not RunFiles(path).is_file(RUN_FILE):
            raise WebError(404, f"no run named {run_id!r} in {self.root}")
        try:
            return RunStore.open(path)
        except RunStoreError as exc:
            raise WebError(500, str(exc)) from None

    def list(self) -> list[dict]:
        out: list[dict] = []
        if not self.root.is_dir():
            return out
        for d in sorted(self.root.iterdir(), key=lambda p: p.name, reverse=True):
            if os.path.islink(d) or not d.is_dir() or not RUN_ID.match(d.name) or not RunFiles(d).is_file(RUN_FILE):
                continue
            try:
                run = RunFiles(d).read_json(RUN_FILE)
                cfg = run.get("config", {})
                out.append({"id": d.name, "task": (run.get("task") or {}).get("id", "?"), "status": run.get("status"),
                            "done": len(run.get("generations", [])), "planned": cfg.get("generations"),
                            "samples": cfg.get("samples"), "best": run.get("best"), "proposer": run.get("proposer"),
                            "updated": run.get("updated") or run.get("created"), "error": None})
            except CorruptFileError as exc:
                out.append({"id": d.name, "error": f"corrupt run.json: {exc.reason}"})
            except AttributeError as exc:  # not the objects a run.json holds (or removed since listed: None)
                out.append({"id": d.name, "error": f"corrupt run.json: {exc}"})
        return out


def _generation_index(store: RunStore, raw: str) -> tuple[int, GenerationRecord]:
    g = _number(raw, "generation")
    try:
        gen = store.read_generation(g)
    except RunStoreError as exc:
        raise WebError(500, str(exc)) from None
    if gen is None:
        raise WebError(404, f"generation {g} does not exist in run {store.path.name}")
    return g, gen


def _read_json(store: RunStore, path: Path) -> dict:
    """``store.read_json`` for display: an object, or {} when the file is missing, damaged, refused (a
    symlink) or not one."""
    try:
        data = store.read_json(path)
    except CorruptFileError:
        return {}
    return data if isinstance(data, dict) else {}


def _source(store: RunStore, g: int, c: int) -> str | None:
    try:
        return store.read_text(store.cand_dir(g, c) / REWARD_FILE, MAX_SOURCE_BYTES)[:MAX_SOURCE_SHOWN]
    except (OSError, UnicodeDecodeError, CorruptFileError):
        return None


def _diff(store: RunStore, g: int, c: int, source: str | None, parent: Any) -> dict:
    """The candidate's reward against its parent's (``pages.reward_diff``), the parent read from the store."""
    if not parent:
        return reward_diff(None, source, None, candidate_label(g, c))
    try:
        pg, pc = parse_ref(str(parent))
    except FeedbackError:
        return reward_diff(None, source, str(parent), candidate_label(g, c),
                           note=f"parent {parent!r} is not a candidate reference")
    return reward_diff(_source(store, pg, pc), source, candidate_label(pg, pc), candidate_label(g, c))


def _candidates(store: RunStore, run_id: str, g: int, gen: GenerationRecord, budget: Any = None) -> list[dict]:
    """Each candidate of generation ``g`` as the shared card shows it (``pages.card``)."""
    out = []
    for c, proposal in enumerate(gen.get("candidates", [])):
        d = store.cand_dir(g, c)
        m = _read_json(store, d / METRICS_FILE)
        prop = _read_json(store, d / PROPOSAL_FILE) or (proposal if isinstance(proposal, dict) else {})
        source = _source(store, g, c)
        video = f"/runs/{quote(run_id)}/gen/{g}/cand/{c}/video.mp4" if store.is_file(d / VIDEO_FILE) else None
        item = card(candidate_label(g, c), str(c), m or None, prop, source, _diff(store, g, c, source, prop.get("parent")),
                    video, budget, video_info=_read_json(store, d / VIDEO_INFO_FILE))
        out.append(item | {"index": c})
    return out


def duration(seconds: Any) -> str:
    """A time left for people: "2 min 05 s", "40 s"."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "-"
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def live_view(raw: dict | None, now: float) -> dict | None:
    """``live.json`` (``run.progress.LiveState.snapshot``) as ``_live.html`` shows it: every value
    checked (the file sits in a run directory), candidates labelled ``g1c3``, times left counted down
    to ``now``."""
    if not isinstance(raw, dict):
        return None
    updated = _num(raw.get("updated")) or now
    g = raw.get("generation") if isinstance(raw.get("generation"), int) else None
    rows = []
    for cand in as_list(raw.get("candidates")):
        if not isinstance(cand, dict) or not isinstance(cand.get("candidate"), int) or g is None:
            continue
        steps, target = int(_num(cand.get("steps")) or 0), int(_num(cand.get("target")) or 0)
        rows.append({"candidate": cand["candidate"], "label": candidate_label(g, cand["candidate"]),
                     "stage": str(cand.get("stage") or ""), "steps": steps, "target": target,
                     "shown": min(steps, target), "fitness": _num(cand.get("fitness")),
                     "fate": cand.get("fate") if isinstance(cand.get("fate"), str) else None,
                     "error": flatten(cand["error"], 160) if cand.get("error") else None,
                     "rung": cand.get("rung") if isinstance(cand.get("rung"), int) else 0,
                     "rungs": cand.get("rungs") if isinstance(cand.get("rungs"), int) else 1})
    gen_steps = as_dict(raw.get("generation_env_steps"))
    gen_left = _num(raw.get("generation_seconds_left"))
    est = as_dict(raw.get("estimate"))
    run_left = _num(est.get("seconds_left"))
    if run_left is not None:
        run_left = max(0.0, run_left - max(0.0, now - (_num(est.get("at")) or updated)))
    confirm = as_dict(raw.get("confirm"))
    return {"phase": str(raw.get("phase") or ""), "generation": g, "rows": rows,
            "gen_done": int(_num(gen_steps.get("done")) or 0), "gen_planned": int(_num(gen_steps.get("planned")) or 0),
            "generation_left": None if gen_left is None else max(0.0, gen_left - max(0.0, now - updated)),
            "run_left": run_left, "basis": str(est.get("basis") or ""),
            "confirm": {"done": _num(confirm.get("done")), "total": _num(confirm.get("total"))} if confirm else None,
            "age": max(0.0, now - updated)}


def progress(store: RunStore, job: dict | None) -> dict:
    """What the progress endpoint reports: run status, generations done and the current one's candidates,
    and, while a process works on the run, its live progress (``live_view``)."""
    run = store.read_run()
    done = [g["generation"] for g in run.get("generations", [])]
    planned = int((run.get("config") or {}).get("generations") or 0)
    current = next((g for g in range(max(planned, len(done) + 1)) if g not in done), None)
    total = finished = 0
    if current is not None:
        try:
            gen = store.read_generation(current)
        except CorruptFileError:  # damaged, or refused (a link): no progress to show from it
            gen = None
        if gen is not None:
            total = len(gen.get("candidates", []))
            finished = sum(store.is_file(store.cand_dir(current, c) / METRICS_FILE) for c in range(total))
    busy = bool(job and job.get("running")) or store.lock_held()
    live = None
    if busy:
        try:
            live = live_view(store.read_live(), time.time())
        except CorruptFileError:  # caught mid-way by a reader that raced a writer's rename: next poll
            live = None
    return {"run": store.path.name, "status": run.get("status"), "generations_planned": planned,
            "generations_finished": len(done), "current_generation": current, "candidates_total": total,
            "candidates_finished": finished, "busy": busy, "live": live,
            "best": run.get("best"), "job": job, "time": time.time()}


class DescriptorResponse(FileResponse):
    """A ``FileResponse`` (Range requests included) of a file ``RunFiles`` opened: it reads that
    descriptor's file through ``/proc/self/fd``, so a name swapped for a link meanwhile changes nothing;
    the descriptor is closed when the response ends, however it ends."""

    def __init__(self, fd: int, **kwargs: Any):
        self.fd = fd
        super().__init__(f"/proc/self/fd/{fd}", **kwargs)

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            os.close(self.fd)


# ----- the app
class BodyTooLarge(Exception):
    """A request body passed ``MAX_BODY`` while it was being read."""


def _host_name(value: str) -> tuple[str, int | None] | None:
    """("name", port or None) of a Host header value, names lower-cased, IPv6 without brackets."""
    try:
        parts = urlsplit("//" + value.strip())
        name, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not name or parts.path or parts.query or parts.username is not None:
        return None
    return name.lower().rstrip("."), port


def host_checker(host: str | None, port: int | None) -> Callable[[str | None], bool]:
    """Whether a ``Host`` header names this server: a loopback name (127.0.0.1, localhost, [::1]) or
    the bound ``host``, with ``port`` (any port when None). A wildcard bind accepts every name."""
    bound = (host or "127.0.0.1").strip("[]").lower()
    if bound in WILDCARD:
        return lambda value: True
    names = {bound, *LOOPBACK}

    def ok(value: str | None) -> bool:
        parsed = _host_name(value or "")
        if parsed is None:
            return False
        name, given_port = parsed
        if name not in names:
            return False
        return port is None or given_port == port or (given_port is None and port == 80)
    return ok


def origin_allowed(origin: str, host_ok: Callable[[str | None], bool]) -> bool:
    """An ``Origin`` header (when present) must be this server; ``null`` never is."""
    if origin.strip().lower() == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and host_ok(parts.netloc)


def create_app(runs_dir: Path, token: str | None = None,
               start_next: Callable[[Path], None] | None = None, host: str | None = "127.0.0.1",
               port: int | None = None) -> FastAPI:
    """The web UI over ``runs_dir``.

    :param token: if set, every request must carry it (query ``?token=`` or the cookie it sets).
    :param start_next: ``callable(run_dir)`` that starts the run's next generation in the background and
        returns at once; raise ``JobError`` (or ``ValueError``) with a message to refuse. Default:
        ``Jobs().start_next`` (``python -m rewardgen resume RUN_DIR`` after adding a generation).
    :param host, port: where the server is reached; requests whose ``Host`` header names anything
        else (other than 127.0.0.1, localhost, [::1] at ``port``) get a 421. ``port=None`` accepts
        any port.
    """
    runs = Runs(runs_dir)
    jobs = Jobs()
    starter = start_next or jobs.start_next
    csrf = secrets.token_urlsafe(32)
    host_ok = host_checker(host, port)
    env = environment(TEMPLATES)
    env.globals["csrf_field"] = CSRF_FIELD
    env.globals["csrf_token"] = csrf
    env.filters["duration"] = duration
    live_template = env.get_template("_live.html")
    templates = Jinja2Templates(env=env)
    app = FastAPI(title="rewardgen", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runs, app.state.jobs, app.state.csrf = runs, jobs, csrf

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("msg", request.query_params.get("msg", "")[:500])
        ctx.setdefault("err", request.query_params.get("err", "")[:500])
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    def error_page(request: Request, status: int, message: str) -> HTMLResponse:
        return page(request, "error.html", status=status, status_code=status, message=message)

    @app.exception_handler(WebError)
    async def _web_error(request: Request, exc: WebError) -> HTMLResponse:
        return error_page(request, exc.status, exc.message)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> HTMLResponse:
        response = error_page(request, 413, f"request too large (the limit is {MAX_BODY} bytes)")
        response.headers["Connection"] = "close"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        msg = "no such page" if exc.status_code == 404 else str(exc.detail)
        return error_page(request, exc.status_code, msg)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> HTMLResponse:
        return error_page(request, 400, "bad request: " + "; ".join(str(e.get("msg")) for e in exc.errors()))

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        if not host_ok(request.headers.get("host")):
            return error_page(request, 421, f"this server does not answer to the name "
                                            f"{request.headers.get('host', '')!r}; open it as http://127.0.0.1"
                                            + (f":{port}" if port else "") + "/")
        if token is not None:
            given = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                return error_page(request, 401, "this server needs its access token: open the link with "
                                                "?token=... that `rewardgen serve` printed")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin")
            if origin is not None and not origin_allowed(origin, host_ok):
                return error_page(request, 403, f"cross-site request from origin {origin!r} refused")
            if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return error_page(request, 403, "cross-site request refused")
            try:
                length = int(request.headers.get("content-length") or 0)
            except ValueError:
                length = MAX_BODY + 1
            if length > MAX_BODY:
                return error_page(request, 413, f"request too large ({length} bytes; the limit is {MAX_BODY})")
        response = await call_next(request)
        if token is not None and request.query_params.get("token") == token:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        return page(request, "runs.html", runs=runs.list(), runs_dir=str(runs.root))

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str):
        store = runs.store(run_id)
        run = store.read_run()
        gens = []
        g = 0
        summaries = {s["generation"]: s for s in run.get("generations", [])}
        while store.is_file(store.gen_dir(g) / GENERATION_FILE):
            s = summaries.get(g)
            gens.append({"generation": g, "finished": s is not None, "best": (s or {}).get("best"),
                         "candidates": (s or {}).get("candidates", [])})
            g += 1
        feedback_error = None
        try:
            notes = feedback.load(store.path)
        except FeedbackError as exc:
            notes, feedback_error = [], str(exc)
        task = as_dict(run.get("task"))
        threshold = task.get("success_threshold")
        fit_name = as_dict(task.get("fitness")).get("name")
        chart = fitness_chart(run.get("generations", []),
                              threshold=threshold if isinstance(threshold, (int, float)) else None,
                              fitness_label=f"trusted fitness ({fit_name})" if fit_name else "trusted fitness")
        return page(request, "run.html", run=run, run_id=store.path.name, gens=gens,
                    chart=chart, feedback=notes, feedback_error=feedback_error, gens_proposed=len(gens),
                    progress=progress(store, jobs.status(store.path)))

    @app.get("/runs/{run_id}/gen/{gen}", response_class=HTMLResponse)
    def generation_page(request: Request, run_id: str, gen: str):
        store = runs.store(run_id)
        g, record = _generation_index(store, gen)
        run = store.read_run()
        finished = g in {s["generation"] for s in run.get("generations", [])}
        items = [x for x in _safe_feedback(store) if x.get("generation") == g]
        has_next = store.is_file(store.gen_dir(g + 1) / GENERATION_FILE)
        return page(request, "generation.html", run=run, run_id=store.path.name, g=g, finished=finished,
                    cands=_candidates(store, store.path.name, g, record, (run.get("config") or {}).get("steps")),
                    feedback=items, has_next=has_next,
                    gens_proposed=proposed_generations(store), progress=progress(store, jobs.status(store.path)))

    @app.get("/runs/{run_id}/gen/{gen}/cand/{cand}", response_class=HTMLResponse)
    def candidate_page(request: Request, run_id: str, gen: str, cand: str):
        store = runs.store(run_id)
        g, record = _generation_index(store, gen)
        c = _number(cand, "candidate")
        count = len(record.get("candidates", []))
        if c >= count:
            raise WebError(404, f"candidate {candidate_label(g, c)} does not exist (generation {g} has {count})")
        run = store.read_run()
        item = _candidates(store, store.path.name, g, record, (run.get("config") or {}).get("steps"))[c]
        best = as_dict(run.get("best"))
        prog = progress(store, jobs.status(store.path))
        live = prog.get("live") or {}
        now = next((r for r in live.get("rows", []) if r["candidate"] == c and live.get("generation") == g), None)
        mine = [x for x in _safe_feedback(store) if _about(x.get("candidate")) == (g, c)]
        parent = _about(item.get("parent"))
        return page(request, "candidate.html", run=run, run_id=store.path.name, run_path=str(store.path), g=g,
                    c=item, index=c, count=count, label=candidate_label(g, c),
                    parent=parent and {"g": parent[0], "c": parent[1], "label": candidate_label(*parent)},
                    is_best=(best.get("generation"), best.get("candidate")) == (g, c), live_row=now,
                    feedback=mine, progress=prog, gens_proposed=proposed_generations(store))

    def _video_file(run_id: str, gen: str, cand: str) -> FileResponse:
        store = runs.store(run_id)
        g, record = _generation_index(store, gen)
        c = _number(cand, "candidate")
        if c >= len(record.get("candidates", [])):
            raise WebError(404, f"candidate {candidate_label(g, c)} does not exist")
        try:  # opened without following a link; the response reads that descriptor, whatever the name is now
            fd = store.open_fd(store.cand_dir(g, c) / VIDEO_FILE)
        except (OSError, CorruptFileError):
            raise WebError(404, f"candidate {candidate_label(g, c)} has no video") from None
        return DescriptorResponse(fd, media_type="video/mp4", headers={"Cache-Control": "no-cache"})

    @app.get("/runs/{run_id}/gen/{gen}/cand/{cand}/video.mp4")
    def video(run_id: str, gen: str, cand: str):
        return _video_file(run_id, gen, cand)

    @app.get("/runs/{run_id}/{gen_dir}/{cand_dir}/video.mp4")
    def report_video(run_id: str, gen_dir: str, cand_dir: str):
        """The report's relative video links (``gen-000/cand-01/video.mp4``)."""
        gm, cm = re.fullmatch(r"gen-([0-9]{3,6})", gen_dir), re.fullmatch(r"cand-([0-9]{2,6})", cand_dir)
        if not gm or not cm or gen_dirname(int(gm.group(1))) != gen_dir or cand_dirname(int(cm.group(1))) != cand_dir:
            raise WebError(404, "no such video")
        return _video_file(run_id, str(int(gm.group(1))), str(int(cm.group(1))))

    @app.get("/runs/{run_id}/report", response_class=HTMLResponse)
    def report(run_id: str):
        from rewardgen.inspect.report import render_html

        store = runs.store(run_id)
        text = render_html(store.path, store.path)  # videos linked relative to the run: report_video serves them
        return HTMLResponse(text, headers={"Content-Security-Policy": REPORT_CSP, "Cache-Control": "no-cache"})

    @app.get("/runs/{run_id}/progress.json")
    def progress_json(run_id: str):
        store = runs.store(run_id)
        data = progress(store, jobs.status(store.path))
        data["live_html"] = live_template.render(live=data["live"], run_id=store.path.name)
        return JSONResponse(data)

    async def form(request: Request) -> dict[str, str]:
        """The urlencoded form of a POST, read at most ``MAX_BODY`` bytes (chunked bodies too), with the
        server's CSRF token checked before anything is done."""
        kind = request.headers.get("content-type", "application/x-www-form-urlencoded").split(";")[0].strip()
        if kind != "application/x-www-form-urlencoded":
            raise WebError(415, f"expected a form (application/x-www-form-urlencoded), got {kind!r}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise BodyTooLarge()
        try:
            data = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100))
        except (UnicodeDecodeError, ValueError) as exc:  # malformed body
            raise WebError(400, f"could not read the form: {exc}") from None
        given = data.pop(CSRF_FIELD, None) or request.headers.get(CSRF_HEADER) or ""
        if not hmac.compare_digest(given.encode(), csrf.encode()):
            raise WebError(403, "this form is stale or came from another site (its CSRF token is missing or "
                                "wrong); reload the page and try again")
        return data

    def form_number(value: str, what: str) -> int:
        """A generation or candidate number as a form sends it: the digits the page's URLs use (``NUMBER``),
        so what is stored is what the page shows; anything else is the user's mistake (400)."""
        if not NUMBER.match(value):
            raise WebError(400, f"preference not saved: {what} must be a number, got {value!r}")
        return int(value)

    def back(run_id: str, gen: str | None, cand: str | None = None, **query: str) -> RedirectResponse:
        url = f"/runs/{quote(run_id)}" + (f"/gen/{int(gen)}" if gen and NUMBER.match(gen) else "")
        if gen and NUMBER.match(gen) and cand and NUMBER.match(cand):
            url += f"/cand/{int(cand)}"
        q = "&".join(f"{k}={quote(v)}" for k, v in query.items())
        return RedirectResponse(url + (f"?{q}" if q else ""), status_code=303)

    @app.post("/runs/{run_id}/feedback")
    async def post_feedback(request: Request, run_id: str):
        store = runs.store(run_id)
        f = await form(request)
        try:
            item = feedback.add_text(store.path, f.get("text", ""), f.get("candidate") or None)
        except FeedbackError as exc:
            raise WebError(400, f"feedback not saved: {exc}") from None
        about = f" about {as_label(item['candidate'])}" if item["candidate"] else ""
        return back(store.path.name, f.get("return_gen"), f.get("return_cand"),
                    msg=f"feedback #{item['id']}{about} saved; generation {item['applies_to']} will use it")

    @app.post("/runs/{run_id}/prefer")
    async def post_prefer(request: Request, run_id: str):
        store = runs.store(run_id)
        f = await form(request)
        gen, best, worst = f.get("generation", ""), f.get("best", ""), f.get("worst", "")
        if not best:
            raise WebError(400, "preference not saved: choose the best candidate")
        try:
            item = feedback.add_preference(store.path, form_number(gen, "generation"),
                                           best=form_number(best, "best"),
                                           worst=form_number(worst, "worst") if worst else None)
        except FeedbackError as exc:
            raise WebError(400, f"preference not saved: {exc}") from None
        text = f"preference #{item['id']} saved: best {candidate_label(item['generation'], item['best'])}"
        if item["worst"] is not None:
            text += f", worst {candidate_label(item['generation'], item['worst'])}"
        return back(store.path.name, gen, msg=text)

    @app.post("/runs/{run_id}/next")
    async def post_next(request: Request, run_id: str):
        store = runs.store(run_id)
        await form(request)
        try:
            starter(store.path)
        except (JobError, ValueError) as exc:
            raise WebError(409, f"cannot start the next generation: {exc}") from None
        return back(store.path.name, None, msg="next generation started")

    return app


def _about(ref: Any) -> tuple[int, int] | None:
    """(generation, candidate) of a feedback item's or proposal's candidate reference (``1/3`` or ``g1c3``)."""
    from rewardgen.store import parse_candidate_label

    if not isinstance(ref, str) or not ref:
        return None
    try:
        return parse_candidate_label(ref)
    except ValueError:
        return None


def _safe_feedback(store: RunStore) -> list[dict]:
    try:
        return feedback.load(store.path)
    except FeedbackError:
        return []



def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if host not in LOOPBACK and not token:
        raise ValueError(f"refusing to serve on {host} without a token: anyone who can reach it could start "
                         "training runs; pass --token (or bind 127.0.0.1)")


def serve(runs_dir: Path, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          start_next: Callable[[Path], None] | None = None) -> None:
    """Run the web UI with uvicorn until interrupted. ValueError for a non-loopback host without token."""
    import uvicorn

    check_bind(host, token)
    app = create_app(Path(runs_dir), token=token, start_next=start_next, host=host, port=port)
    shown = f"[{host}]" if ":" in host else host
    print(f"rewardgen web UI: http://{shown}:{port}/" + (f"?token={quote(token)}" if token else ""), flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")

"""Talking to any OpenAI-compatible chat endpoint: the official ``openai`` client plus records, a
cache, and the adaptations real servers need.

- Failures are classified (``classify``) into one line that says what happened and what to do.
  Errors that retrying cannot fix (401, 403, out of quota, unknown model, no such endpoint) fail
  fast: the first one stops every later request of the client. Transient ones (429 rate limits,
  5xx, timeouts, refused connections) are retried with exponential backoff honouring
  ``Retry-After`` (the openai client's own retries are off so that, e.g., a 429
  ``insufficient_quota`` is not retried).
- The client adapts where the server says how, says so through ``notify``, and remembers it for
  the run (``llm-adaptations.json`` in the run directory): a rejected parameter (``temperature``
  other than 1 on reasoning models, ``n``, ``max_tokens``) is dropped or replaced; a refused
  ``system`` role is folded into the first user message; an answer cut by the output limit
  (``finish_reason: length``) goes back as the model's turn, and a follow-up turn asks for only the
  code with a larger ``max_tokens``; an empty choice is asked for again once.
- ``n`` samples per request where the server honours it; where it returns fewer choices, the rest
  come from concurrent single-sample requests. Large K is split into chunks.
- Code is looked for in the answer without its ``<think>`` blocks, then in ``tool_calls``
  arguments, then in the reasoning (``reasoning_content``/``reasoning`` fields, or the ``<think>``
  block), and the answer says where it came from.
- Every request and response is saved as JSON under the run (never the API key), tokens counted.
- A content-addressed cache (sha256 of model, messages, temperature, sample slot) makes resume
  free and ``--replay`` possible: a replaying client answers only from the cache, with no network.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rewardgen.errors import flatten
from rewardgen.proposers.extract import split_thinking
from rewardgen.runfiles import RunFiles, RunStoreError

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_ENDPOINT = "https://api.openai.com/v1"

#: failure kinds that retrying cannot fix: the first one stops every later request of the run
FATAL_KINDS = {"auth", "permission", "quota", "model", "endpoint"}
#: failure kinds retried with backoff
RETRYABLE_KINDS = {"rate_limit", "server", "timeout", "connection"}
#: optional request parameters a server may reject (and the request still makes sense without)
OPTIONAL_PARAMS = ("temperature", "n", "max_tokens", "max_completion_tokens")
#: the largest output budget asked for after answers were cut
MAX_OUTPUT_TOKENS = 32768

FOLLOW_UP = ("Your answer was cut off by the output limit. Give only the code now: the complete compute_reward(s) "
             "and its helpers in one ```python block, no explanation.")


class LLMError(RuntimeError):
    """A request that failed (after retries where retrying can help).

    ``kind`` says how (for records, prompts and summaries); ``fatal`` when retrying cannot fix it."""

    def __init__(self, message: str, kind: str = "error", fatal: bool | None = None):
        super().__init__(message)
        self.kind = kind
        self.fatal = kind in FATAL_KINDS if fatal is None else fatal


@dataclass(frozen=True)
class LLMSettings:
    """How to reach the model.

    :param model: model name sent to the server.
    :param base_url: endpoint (e.g. http://127.0.0.1:8000/v1); None uses OPENAI_BASE_URL or OpenAI's.
    :param temperature: sampling temperature.
    :param timeout: seconds per HTTP request before it is retried or given up.
    :param max_retries: retries of a transient failure (429, 5xx, connection errors, timeouts).
    :param chunk: most samples asked for in one request (``n``).
    """

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    temperature: float = 1.0
    timeout: float = 120.0
    max_retries: int = 4
    chunk: int = 8

    @property
    def endpoint(self) -> str:
        return (self.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_ENDPOINT).rstrip("/")


def llm_configured(base_url: str | None = None) -> bool:
    """Whether ``--llm auto`` should use the LLM: a key or a base URL is configured."""
    return bool(base_url or os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))


def missing_key_problem(base_url: str | None = None) -> str | None:
    """Why an LLM run cannot start, or None: OpenAI's own API needs OPENAI_API_KEY."""
    if base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"):
        return None
    return (f"--llm openai talks to OpenAI's API ({DEFAULT_ENDPOINT}), which needs a key and OPENAI_API_KEY is "
            "not set: export OPENAI_API_KEY=..., or point --base-url (or OPENAI_BASE_URL) at a local server")


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    cached: int = 0
    failed: int = 0

    def add(self, other: dict) -> None:
        self.prompt_tokens += int(other.get("prompt_tokens") or 0)
        self.completion_tokens += int(other.get("completion_tokens") or 0)

    def as_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "requests": self.requests, "cached": self.cached, "failed": self.failed}


@dataclass
class Answer:
    """One sampled completion (or why there is none).

    ``text`` is the answer to use: its content without ``<think>`` blocks, or the code found in a
    tool call or the reasoning (``source`` says which); ``finish_reason`` as the server said."""

    text: str | None
    error: str | None = None
    kind: str | None = None
    cached: bool = False
    fatal: bool = False
    source: str = "content"
    finish_reason: str | None = None


@dataclass
class Adaptations:
    """What this run learned about the server (kept in ``llm-adaptations.json``)."""

    dropped: list[str] = field(default_factory=list)  # request parameters the server rejected
    fold_system: bool = False  # the system role is refused: the system prompt goes into the user message
    max_tokens: int | None = None  # the output budget asked for after answers were cut
    token_param: str = "max_tokens"  # or max_completion_tokens (OpenAI's reasoning models)
    compact: bool = False  # the full prompt exceeded the context: use the compact one
    notes: list[str] = field(default_factory=list)  # what was adapted, in words


# ----------------------------------------------------------------------------- answers
def _tool_texts(message: Any) -> list[str]:
    """Text of the arguments of every tool/function call in a message (string values of JSON args)."""
    out = []
    calls = list(getattr(message, "tool_calls", None) or [])
    fn = getattr(message, "function_call", None)
    for call in calls + ([fn] if fn else []):
        args = getattr(getattr(call, "function", call), "arguments", None)
        if not args:
            continue
        try:
            parsed = json.loads(args)
        except ValueError:
            out.append(str(args))
            continue
        values = [v for v in parsed.values() if isinstance(v, str)] if isinstance(parsed, dict) else []
        out.append("\n\n".join(values) if values else json.dumps(parsed))
    return out


def _reasoning(message: Any) -> str:
    extra = getattr(message, "model_extra", None) or {}
    for key in ("reasoning_content", "reasoning"):
        value = extra.get(key) or getattr(message, key, None)
        if isinstance(value, str) and value.strip():
            return value
    return ""


@dataclass
class _Choice:
    content: str  # without thinking
    thinking: str
    reasoning: str
    tools: list[str]
    finish_reason: str | None
    completion_tokens: int = 0


class _Predicates:
    """``usable(text)`` (callable) plus ``answered(text)``: the answer holds code at all, even broken."""

    def __init__(self, usable: Callable[[str], bool], answered: Callable[[str], bool] | None):
        self.usable, self.answered = usable, answered or usable

    def __call__(self, text: str) -> bool:
        return self.usable(text)


def _pick(choice: _Choice, usable: _Predicates | None) -> tuple[str, str]:
    """(text, source) of a choice: the content when it holds an answer (even a broken one: a fix
    round repairs it), else usable code from a tool call or the reasoning (drafts in the thinking
    are never preferred to the answer)."""
    if usable is None or usable(choice.content) or usable.answered(choice.content):
        return choice.content, "content"
    for source, texts in (("tool_calls", choice.tools), ("reasoning", [choice.reasoning, choice.thinking])):
        for text in texts:
            if text and usable(text):
                return text, source
    return choice.content, "content"


# ----------------------------------------------------------------------------- failures
_CONTEXT = re.compile(r"context[ _-]?(length|size|window)|maximum context|exceeds? the (available )?context|"
                      r"too many tokens|prompt is too long|input is too long|reduce the length|"
                      r"longer than the model|n_ctx|context_length_exceeded", re.IGNORECASE)
_MODEL_UNKNOWN = re.compile(r"model.{0,80}(not found|does not exist|doesn't exist|unknown|not available|"
                            r"no such|invalid model|not loaded)|(unknown|invalid) model|model_not_found",
                            re.IGNORECASE)
_SYSTEM_ROLE = re.compile(r"system[ _-]?(role|message|prompt)s?\b.{0,60}(not supported|unsupported|not allowed|"
                          r"invalid|must|only)|roles? must alternate|(unsupported|invalid|unknown) role.{0,20}system|"
                          r"'system'.{0,40}(not supported|unsupported|invalid)|developer role",
                          re.IGNORECASE)


def _error_fields(exc: Any) -> tuple[str, str | None, str | None]:
    """(message, code, param) of an API error, whatever shape the server's body had."""
    body = getattr(exc, "body", None)
    err = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(err, dict):
        message = err.get("message") or err.get("detail") or err.get("msg") or json.dumps(err)[:500]
        return str(message), (str(err["code"]) if err.get("code") is not None else None), err.get("param")
    if isinstance(err, str) and err.strip():
        return err, None, None
    return str(getattr(exc, "message", None) or exc), getattr(exc, "code", None), getattr(exc, "param", None)


def rejected_param(message: str, code: str | None, param: str | None, request: dict) -> str | None:
    """The optional request parameter a 400 names as unsupported, or None."""
    sent = [p for p in OPTIONAL_PARAMS if p in request]
    if param in sent:
        return param
    text = message.lower()
    for p in sent:
        if p == "n":
            if re.search(r"['\"`]n['\"`]|\bn must\b|\bn > ?1\b|\bn=\d|multiple (choices|completions)|"
                         r"only one (choice|completion)", text):
                return p
        elif re.search(rf"['\"`]?{p}['\"`]?", text) and re.search(
                r"unsupported|not supported|does not support|only the default|not allowed|invalid|unrecognized|"
                r"unknown|must be|extra", text):
            return p
    return None


def classify(exc: BaseException, settings: LLMSettings, request: dict) -> LLMError:
    """One line for a failed request: what happened and what to do; ``kind`` for adapting and summaries."""
    import openai

    where = settings.endpoint
    if isinstance(exc, openai.APITimeoutError):
        return LLMError(f"request timed out: no answer from {where} within {settings.timeout:g} s (raise "
                        "--llm-timeout for a slow server)", "timeout")
    if isinstance(exc, openai.APIConnectionError):
        cause = flatten(exc.__cause__ or exc, 160)
        hint = ("check the network, or point --base-url at a local server" if where == DEFAULT_ENDPOINT
                else "is the server running? check --base-url")
        return LLMError(f"cannot reach {where} ({cause}): {hint}", "connection")
    if not isinstance(exc, openai.APIStatusError):
        return LLMError(f"{type(exc).__name__}: {flatten(exc, 200)}", "error", fatal=False)
    status = exc.status_code
    message, code, param = _error_fields(exc)
    said = flatten(message, 240)
    if status == 401:
        key = "OPENAI_API_KEY is not set" if not os.environ.get("OPENAI_API_KEY") else "OPENAI_API_KEY was refused"
        return LLMError(f"401 the API key was refused by {where} ({key}): set OPENAI_API_KEY to a valid key for "
                        f"this endpoint", "auth")
    if status == 403:
        return LLMError(f"403 access denied by {where} ({said}): the key may lack access to model "
                        f"{settings.model!r}", "permission")
    if status == 429:
        if (code or "") == "insufficient_quota" or re.search(r"quota|billing|credit", message, re.IGNORECASE):
            return LLMError(f"429 insufficient_quota: the account behind the key is out of quota or credit "
                            f"({said}); add credit, or use another key or --base-url", "quota")
        return LLMError(f"429 rate limited by {where} ({said})", "rate_limit")
    if status == 404 or (code or "") == "model_not_found" or (status in (400, 422) and _MODEL_UNKNOWN.search(message)
                                                               and not _CONTEXT.search(message)):
        if _MODEL_UNKNOWN.search(message) or (code or "") == "model_not_found":
            return LLMError(f"{status} the server does not know model {settings.model!r} ({said}): check --model",
                            "model")
        return LLMError(f"404 nothing answers at {where}/chat/completions: check --base-url (OpenAI-compatible "
                        "servers usually end in /v1)", "endpoint")
    if status >= 500 or status in (408, 409):
        return LLMError(f"server error {status} from {where} ({said})", "server")
    if (code or "") in ("context_length_exceeded", "exceed_context_size_error") or _CONTEXT.search(message):
        return LLMError(f"{status} the prompt is longer than the model's context ({said})", "context_length")
    if rejected_param(message, code, param, request):
        return LLMError(f"{status} the server rejected parameter {rejected_param(message, code, param, request)!r} "
                        f"({said})", "param", fatal=False)
    if _SYSTEM_ROLE.search(message) and any(m.get("role") == "system" for m in request.get("messages", [])):
        return LLMError(f"{status} the server refused the system role ({said})", "system_role", fatal=False)
    return LLMError(f"{status} the server rejected the request ({said})", "bad_request", fatal=False)


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000.0
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def fold_system(messages: list[dict]) -> list[dict]:
    """The same conversation without a system message: its text opens the first user message."""
    system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if not system:
        return rest
    for m in rest:
        if m.get("role") == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


class LLMClient:
    """Chat completions with records under ``record_dir`` and a cache under ``cache_dir``.

    ``notify(message)`` is told every adaptation (one line each); ``on_status(in_flight, done,
    failed)`` follows the requests (for a live display)."""

    def __init__(self, settings: LLMSettings, cache_dir: Path, record_dir: Path | None = None, replay: bool = False,
                 notify: Callable[[str], None] | None = None,
                 on_status: Callable[[int, int, int], None] | None = None, sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self.cache_dir = Path(cache_dir)
        self.record_dir = record_dir
        self.replay = replay
        self.notify = notify or (lambda message: None)
        self.on_status = on_status
        self.sleep = sleep
        self.usage = Usage()
        self.fatal: LLMError | None = None
        self._lock = threading.Lock()
        # records are numbered on from what the folder holds (a resumed generation keeps the old ones)
        self._files = RunFiles(self.cache_dir.parent)  # the run's files: no link followed, nothing outside it
        self._seq = len(self._files.listdir(record_dir, "*.json")) if record_dir else 0
        self._in_flight = 0
        self._client = None
        self._adapt_file = self.cache_dir.parent / "llm-adaptations.json"
        self.adapt = self._load_adaptations()

    # ----- plumbing
    def _openai(self):
        if self._client is None:
            import openai

            key = os.environ.get("OPENAI_API_KEY") or "not-needed"  # local servers take any key
            self._client = openai.OpenAI(api_key=key, base_url=self.settings.base_url or None,
                                         timeout=self.settings.timeout, max_retries=0)  # retries: _call
        return self._client

    def _load_adaptations(self) -> Adaptations:
        try:
            raw = self._files.read_json(self._adapt_file)  # None when missing: AttributeError below
            return Adaptations(**{k: v for k, v in raw.items() if k in Adaptations.__dataclass_fields__})
        except (RunStoreError, TypeError, ValueError, AttributeError):
            return Adaptations()

    def adapted(self, note: str, **changes: Any) -> None:
        """Remember an adaptation for the run and say it (once)."""
        with self._lock:
            for key, value in changes.items():
                setattr(self.adapt, key, value)
            new = note not in self.adapt.notes
            if new:
                self.adapt.notes.append(note)
            try:
                self._files.write_json(self._adapt_file, asdict(self.adapt))
            except (OSError, RunStoreError):
                pass  # remembering is a convenience; the run goes on
        if new:
            self.notify(note)

    def _key(self, messages: list[dict], slot: str) -> str:
        blob = json.dumps({"model": self.settings.model, "messages": messages,
                           "temperature": self.settings.temperature, "slot": slot}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _record(self, tag: str, request: dict, response: dict) -> None:
        if self.record_dir is None:
            return
        with self._lock:
            self._seq += 1
            n = self._seq
        self._files.write_json(self.record_dir / f"{n:03d}-{tag}.json", {"request": request, "response": response})

    def _cache_get(self, key: str) -> tuple[str, str] | None:
        try:
            raw = self._files.read_json(self.cache_dir / f"{key}.json")  # None when missing: TypeError below
            return raw["text"], raw.get("source", "content")
        except (RunStoreError, KeyError, TypeError, ValueError):
            return None

    def _cache_put(self, key: str, text: str, source: str) -> None:
        self._files.write_json(self.cache_dir / f"{key}.json", {"text": text, "source": source})

    def _status(self, delta: int) -> None:
        with self._lock:
            self._in_flight += delta
            state = (self._in_flight, self.usage.requests - self._in_flight - self.usage.failed, self.usage.failed)
        if self.on_status:
            self.on_status(*state)

    # ----- the one public call
    def sample(self, messages: list[dict], k: int, tag: str, usable: Callable[[str], bool] | None = None,
               answered: Callable[[str], bool] | None = None) -> list[Answer]:
        """``k`` independent completions of ``messages``; cached slots are served from the cache.

        ``usable(text)`` tells whether an answer holds what was asked for (code): an answer cut by
        the output limit that is not usable is asked again with more room; code is looked for in
        tool calls and reasoning when the content has no answer at all (``answered(text)`` false)."""
        checks = _Predicates(usable, answered) if usable else None
        slots = [f"{tag}#{i}" for i in range(k)]
        keys = [self._key(messages, s) for s in slots]
        answers: list[Answer | None] = [None] * k
        for i, key in enumerate(keys):
            hit = self._cache_get(key)
            if hit is not None:
                answers[i] = Answer(hit[0], cached=True, source=hit[1])
                self.usage.cached += 1
        missing = [i for i in range(k) if answers[i] is None]
        if missing and self.replay:
            for i in missing:
                answers[i] = Answer(None, "replay: this response was not recorded in the replayed run", "replay")
            missing = []
        chunk = max(1, self.settings.chunk)
        for start in range(0, len(missing), chunk):
            part = missing[start:start + chunk]
            got = self._call(messages, len(part), tag)
            if isinstance(got, LLMError):
                for i in part:
                    answers[i] = self._failure(got)
                continue
            choices: list[_Choice | LLMError] = list(got)
            if len(choices) < len(part):  # the server ignored n: fetch the rest concurrently
                rest = len(part) - len(choices)
                with ThreadPoolExecutor(max_workers=min(4, rest)) as pool:
                    extra = list(pool.map(lambda _: self._call(messages, 1, tag), range(rest)))
                for got_one in extra:
                    choices.append(got_one if isinstance(got_one, LLMError) else
                                   (got_one[0] if got_one else LLMError("the server returned no choice", "empty")))
            with ThreadPoolExecutor(max_workers=min(4, len(part))) as pool:
                finished = list(pool.map(lambda ic: self._finish(messages, ic[1], tag, checks), zip(part, choices)))
            for i, ans in zip(part, finished):
                answers[i] = ans
        for i, kept in enumerate(answers):
            if kept is not None and kept.text is not None and not kept.cached:
                self._cache_put(keys[i], kept.text, kept.source)
        return [a if a is not None else Answer(None, "no answer", "empty") for a in answers]

    def _failure(self, err: LLMError) -> Answer:
        return Answer(None, str(err), err.kind, fatal=err.fatal)

    def _finish(self, messages: list[dict], choice: _Choice | LLMError, tag: str,
                usable: _Predicates | None) -> Answer:
        """One choice made into an Answer: asked again when it was cut or empty."""
        if isinstance(choice, LLMError):
            return self._failure(choice)
        text, source = _pick(choice, usable)
        if choice.finish_reason == "length" and not (usable and usable(text) and _complete_block(text)):
            return self._longer(messages, choice, tag, usable)
        if not text.strip():
            again = self._call(messages, 1, tag)  # an empty choice is asked for once more
            if isinstance(again, LLMError):
                return self._failure(again)
            if again and again[0].finish_reason == "length":
                return self._longer(messages, again[0], tag, usable)
            text, source = _pick(again[0], usable) if again else ("", "content")
            if not text.strip():
                why = _empty_reason(again[0] if again else choice)
                return Answer(None, f"the model returned an empty answer twice{why}", "empty")
        return Answer(text, source=source, finish_reason=choice.finish_reason)

    def _longer(self, messages: list[dict], choice: _Choice, tag: str,
                usable: _Predicates | None) -> Answer:
        """An answer cut by the output limit: the cut answer goes back as the model's turn and a follow-up
        turn asks for only the code, with a larger output budget (some servers cut every first answer at
        their own limit whatever ``max_tokens`` says, yet answer a follow-up whole); twice, then named."""
        cut_at, cut = choice.completion_tokens, choice
        for _ in range(2):
            budget = min(MAX_OUTPUT_TOKENS, max(4096, 2 * (self.adapt.max_tokens or cut_at or 2048)))
            if budget != self.adapt.max_tokens:
                self.adapted(f"answers were cut by the output limit (finish_reason length at {cut_at or '?'} tokens): "
                             f"asking in a follow-up turn for only the code, with {self.adapt.token_param}={budget}",
                             max_tokens=budget)
            follow_up = [*messages, {"role": "assistant", "content": cut.content or "(cut off before any text)"},
                         {"role": "user", "content": FOLLOW_UP}]
            got = self._call(follow_up, 1, tag)
            if isinstance(got, LLMError):
                return self._failure(got)
            if not got:
                break
            text, source = _pick(got[0], usable)
            if got[0].finish_reason != "length" or (usable and usable(text) and _complete_block(text)):
                if text.strip():
                    return Answer(text, source=source, finish_reason=got[0].finish_reason)
                break
            cut_at, cut = got[0].completion_tokens, got[0]
        return Answer(None, f"every answer was cut by the output limit (finish_reason length at {cut_at or '?'} "
                            f"tokens, max {self.adapt.token_param} {self.adapt.max_tokens}), even when asked in a "
                            "follow-up turn for only the code: raise the server's output limit (llama.cpp -n, Ollama "
                            "num_predict) or use a model that answers shorter", "length")

    # ----- one request, with retries and adaptations
    def _request_body(self, messages: list[dict], n: int) -> dict:
        a = self.adapt
        body: dict[str, Any] = {"model": self.settings.model,
                                "messages": fold_system(messages) if a.fold_system else messages}
        if "n" not in a.dropped:
            body["n"] = n
        if "temperature" not in a.dropped:
            body["temperature"] = self.settings.temperature
        if a.max_tokens and a.token_param not in a.dropped:
            body[a.token_param] = a.max_tokens
        return body

    def _call(self, messages: list[dict], n: int, tag: str) -> list[_Choice] | LLMError:
        """Choices for ``messages`` (fewer than ``n`` when the server ignores ``n``), or the failure."""
        if self.fatal is not None:  # retrying cannot fix it: no more requests this run
            return self.fatal
        if n > 1 and "n" in self.adapt.dropped:
            with ThreadPoolExecutor(max_workers=min(4, n)) as pool:
                parts = list(pool.map(lambda _: self._call(messages, 1, tag), range(n)))
            errors = [p for p in parts if isinstance(p, LLMError)]
            choices = [c for p in parts if not isinstance(p, LLMError) for c in p]
            return choices if choices else (errors[0] if errors else [])
        retries = adaptations = 0
        while True:
            request = self._request_body(messages, n)
            started = time.monotonic()
            with self._lock:
                self.usage.requests += 1
            self._status(+1)
            try:
                resp = self._openai().chat.completions.create(**request)
            except Exception as exc:  # every failure is classified below
                import openai

                self._status(-1)
                if not isinstance(exc, openai.OpenAIError):
                    raise
                err = classify(exc, self.settings, request)
                self._record(tag, request, {"error": str(err), "kind": err.kind,
                                            "seconds": round(time.monotonic() - started, 3)})
                if adaptations < 4 and self._adapt_to(err, request, str(exc)):
                    adaptations += 1
                    continue
                if err.kind in RETRYABLE_KINDS and retries < self.settings.max_retries:
                    delay = _retry_after(exc)
                    delay = min(60.0, delay) if delay is not None else min(8.0, 0.5 * 2 ** retries) * random.uniform(0.75, 1)
                    retries += 1
                    self.sleep(delay)
                    continue
                if err.kind in RETRYABLE_KINDS and retries:
                    # a server still unreachable after the retries will not be reached by the next request
                    err = LLMError(f"{err} (after {retries} retries)", err.kind, err.kind == "connection")
                with self._lock:
                    self.usage.failed += 1
                    if err.fatal and self.fatal is None:
                        self.fatal = err
                return err
            self._status(-1)
            usage = resp.usage.model_dump() if resp.usage else {}
            with self._lock:
                self.usage.add(usage)
            choices = []
            per_choice = int(usage.get("completion_tokens") or 0) // max(1, len(resp.choices or []))
            for c in resp.choices or []:
                message = c.message
                content, thinking = split_thinking(getattr(message, "content", None) if message else None)
                choices.append(_Choice(content, thinking, _reasoning(message) if message else "",
                                       _tool_texts(message) if message else [], c.finish_reason, per_choice))
            self._record(tag, request, {"texts": [c.content for c in choices], "usage": usage,
                                        "seconds": round(time.monotonic() - started, 3),
                                        "finish_reasons": [c.finish_reason for c in choices],
                                        **({"reasoning": [c.reasoning or c.thinking for c in choices]}
                                           if any(c.reasoning or c.thinking for c in choices) else {}),
                                        **({"tool_calls": [c.tools for c in choices]}
                                           if any(c.tools for c in choices) else {})})
            return choices

    def _adapt_to(self, err: LLMError, request: dict, raw: str) -> bool:
        """Change how requests are made when the server said what it refuses; True to ask again."""
        a = self.adapt
        if err.kind == "param":
            param = next((p for p in OPTIONAL_PARAMS if f"parameter {p!r}" in str(err)), None)
            if param is None or param in a.dropped:
                return False
            if param == "max_tokens" and a.token_param == "max_tokens" and "max_completion_tokens" in raw:
                self.adapted(f"the server rejected max_tokens ({_said(err)}): using max_completion_tokens instead",
                             token_param="max_completion_tokens")
                return True
            what = {"temperature": f"temperature={request.get('temperature')}",
                    "n": f"n={request.get('n')}"}.get(param, param)
            then = {"temperature": "asking without it (the server's default) for the rest of the run",
                    "n": "asking for one answer per request instead"}.get(param, "asking without it")
            self.adapted(f"the server rejected {what} ({_said(err)}): {then}", dropped=[*a.dropped, param])
            return True
        if err.kind == "system_role" and not a.fold_system:
            self.adapted(f"the server refused the system role ({_said(err)}): the system prompt now opens the user "
                         "message", fold_system=True)
            return True
        if err.kind == "context_length" and a.max_tokens:
            self.adapted(f"the output budget {a.token_param}={a.max_tokens} did not fit the model's context: "
                         "asking without it", max_tokens=None)
            return True
        return False


def _complete_block(text: str) -> bool:
    """Whether a cut answer still holds a closed code block (code cut mid-way may parse and be wrong)."""
    return (text.count("```") >= 2 and text.count("```") % 2 == 0) or (text.lstrip().startswith("{") and \
        text.rstrip().endswith("}"))


def _said(err: LLMError) -> str:
    text = str(err)
    start, end = text.find("("), text.rfind(")")
    return flatten(text[start + 1:end], 160) if 0 <= start < end else flatten(text, 160)


def _empty_reason(choice: _Choice) -> str:
    if choice.finish_reason == "content_filter":
        return " (the server's content filter stopped it)"
    if choice.reasoning or choice.thinking:
        return f" (it reasoned for {len(choice.reasoning or choice.thinking)} characters but gave no code)"
    if choice.finish_reason:
        return f" (finish_reason {choice.finish_reason})"
    return ""


__all__ = ["Adaptations", "Answer", "LLMClient", "LLMError", "LLMSettings", "Usage", "classify", "fold_system",
           "llm_configured", "missing_key_problem", "split_thinking"]

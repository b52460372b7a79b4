"""Talking to any OpenAI-compatible chat endpoint: the official ``openai`` client plus records and a cache.

- Retries: the client's own (429 and 5xx with exponential backoff honouring Retry-After,
  connection errors, timeouts), so rewardgen does not re-implement them.
- ``n`` samples per request where the server honours it; where it returns fewer choices, the rest
  come from concurrent single-sample requests. Large K is split into chunks.
- Every request and response is saved as JSON under the run (never the API key), tokens counted.
- A content-addressed cache (sha256 of model, messages, temperature, sample slot) makes resume
  free and ``--replay`` possible: a replaying client answers only from the cache, with no network.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rewardgen.runstore import atomic_write_json, read_json

DEFAULT_MODEL = "gpt-4o-mini"


class LLMError(RuntimeError):
    """A request that failed after the client's retries; ``kind`` says how (for records and prompts)."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class LLMSettings:
    """How to reach the model.

    :param model: model name sent to the server.
    :param base_url: endpoint (e.g. http://127.0.0.1:8000/v1); None uses OPENAI_BASE_URL or OpenAI's.
    :param temperature: sampling temperature.
    :param timeout: seconds per HTTP request before the client retries or gives up.
    :param max_retries: the openai client's retry count for 429/5xx/connection errors/timeouts.
    :param chunk: most samples asked for in one request (``n``).
    """

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    temperature: float = 1.0
    timeout: float = 120.0
    max_retries: int = 4
    chunk: int = 8


def llm_configured(base_url: str | None = None) -> bool:
    """Whether ``--llm auto`` should use the LLM: a key or a base URL is configured."""
    return bool(base_url or os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))


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
    """One sampled completion (or why there is none)."""

    text: str | None
    error: str | None = None
    kind: str | None = None
    cached: bool = False


class LLMClient:
    """Chat completions with records under ``record_dir`` and a cache under ``cache_dir``."""

    def __init__(self, settings: LLMSettings, cache_dir: Path, record_dir: Path | None = None, replay: bool = False):
        self.settings = settings
        self.cache_dir = Path(cache_dir)
        self.record_dir = record_dir
        self.replay = replay
        self.usage = Usage()
        self._lock = threading.Lock()
        self._seq = 0
        self._client = None

    # ----- plumbing
    def _openai(self):
        if self._client is None:
            import openai

            key = os.environ.get("OPENAI_API_KEY") or "not-needed"  # local servers take any key
            self._client = openai.OpenAI(api_key=key, base_url=self.settings.base_url or None,
                                         timeout=self.settings.timeout, max_retries=self.settings.max_retries)
        return self._client

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
        atomic_write_json(self.record_dir / f"{n:03d}-{tag}.json", {"request": request, "response": response})

    def _cache_get(self, key: str) -> str | None:
        try:
            return read_json(self.cache_dir / f"{key}.json")["text"]
        except (FileNotFoundError, KeyError, TypeError, ValueError):
            return None

    def _cache_put(self, key: str, text: str) -> None:
        atomic_write_json(self.cache_dir / f"{key}.json", {"text": text})

    # ----- the one public call
    def sample(self, messages: list[dict], k: int, tag: str) -> list[Answer]:
        """``k`` independent completions of ``messages``; cached slots are served from the cache."""
        slots = [f"{tag}#{i}" for i in range(k)]
        keys = [self._key(messages, s) for s in slots]
        answers: list[Answer | None] = [None] * k
        for i, key in enumerate(keys):
            text = self._cache_get(key)
            if text is not None:
                answers[i] = Answer(text, cached=True)
                self.usage.cached += 1
        missing = [i for i in range(k) if answers[i] is None]
        if missing and self.replay:
            for i in missing:
                answers[i] = Answer(None, "replay: this response was not recorded in the replayed run", "replay")
            missing = []
        chunk = max(1, self.settings.chunk)
        for start in range(0, len(missing), chunk):
            part = missing[start:start + chunk]
            texts = self._request(messages, len(part), tag)
            if isinstance(texts, LLMError):
                for i in part:
                    answers[i] = Answer(None, str(texts), texts.kind)
                continue
            if len(texts) < len(part):  # the server ignored n: fetch the rest concurrently
                rest = part[len(texts):]
                with ThreadPoolExecutor(max_workers=min(4, len(rest))) as pool:
                    extra = list(pool.map(lambda _: self._request(messages, 1, tag), rest))
                for i, got in zip(rest, extra):
                    answers[i] = Answer(None, str(got), got.kind) if isinstance(got, LLMError) else \
                        Answer(got[0] if got else None, None if got else "empty answer", None if got else "empty")
            for i, text in zip(part, texts):
                answers[i] = Answer(text)
        for i, ans in enumerate(answers):
            if ans is not None and ans.text is not None and not ans.cached:
                if ans.text.strip():
                    self._cache_put(keys[i], ans.text)
                else:
                    answers[i] = Answer(None, "the model returned an empty answer", "empty")
        return [a if a is not None else Answer(None, "no answer", "empty") for a in answers]

    def _request(self, messages: list[dict], n: int, tag: str) -> list[str] | LLMError:
        import openai

        request = {"model": self.settings.model, "messages": messages, "n": n,
                   "temperature": self.settings.temperature}
        started = time.monotonic()
        with self._lock:
            self.usage.requests += 1
        try:
            resp = self._openai().chat.completions.create(**request)
        except openai.BadRequestError as exc:
            text = str(exc)
            kind = "context_length" if "context" in text.lower() and "length" in text.lower() else "bad_request"
            return self._failed(tag, request, LLMError(f"the server rejected the request: {text[:300]}", kind), started)
        except openai.RateLimitError as exc:
            return self._failed(tag, request, LLMError(f"rate limited after retries: {str(exc)[:200]}", "rate_limit"), started)
        except openai.APITimeoutError:
            return self._failed(tag, request, LLMError(f"request timed out after {self.settings.timeout:.0f} s "
                                                      f"and {self.settings.max_retries} retries", "timeout"), started)
        except openai.APIConnectionError as exc:
            return self._failed(tag, request, LLMError(f"cannot reach {self.settings.base_url or 'the API'}: "
                                                      f"{exc.__cause__ or exc}", "connection"), started)
        except openai.APIStatusError as exc:
            return self._failed(tag, request, LLMError(f"server error {exc.status_code} after retries", "server"), started)
        except openai.OpenAIError as exc:
            return self._failed(tag, request, LLMError(f"{type(exc).__name__}: {str(exc)[:200]}", "error"), started)
        usage = resp.usage.model_dump() if resp.usage else {}
        with self._lock:
            self.usage.add(usage)
        texts = [(c.message.content or "") if c.message else "" for c in (resp.choices or [])]
        self._record(tag, request, {"texts": texts, "usage": usage, "seconds": round(time.monotonic() - started, 3),
                                    "finish_reasons": [c.finish_reason for c in (resp.choices or [])]})
        return texts

    def _failed(self, tag: str, request: dict, err: LLMError, started: float) -> LLMError:
        with self._lock:
            self.usage.failed += 1
        self._record(tag, request, {"error": str(err), "kind": err.kind,
                                    "seconds": round(time.monotonic() - started, 3)})
        return err


__all__ = ["Answer", "LLMClient", "LLMError", "LLMSettings", "Usage", "llm_configured"]

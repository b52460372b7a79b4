"""A scripted OpenAI-compatible chat server on 127.0.0.1 for tests (driven by the real openai client).

``ScriptedServer(responder)``: ``responder(request_json, call_index)`` returns a dict:
- ``{"texts": [...]}``: a 200 answer with one choice per text (``"ignore_n": True`` answers one choice);
- ``{"status": 429, "retry_after": "0"}`` / ``{"status": 500}``: errors;
- ``{"status": 400, "code": "context_length_exceeded"}``: a context-length error; any status with
  ``message``/``code``/``param``/``type``, or ``body`` (a server's own error body, verbatim);
- ``"finish_reason"`` (one, or one per choice), ``"reasoning"`` (one per choice, in
  ``reasoning_field``, default ``reasoning_content``), ``"tool_args"`` (code as tool-call arguments),
  ``"completion_tokens"`` per choice;
- ``{"hang": seconds}``: sleep before answering with the default (drives client timeouts).
Every request body is kept in ``server.requests`` and its ``Authorization`` header (where the API key
travels) in ``server.authorizations``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    def __init__(self, responder: Callable[[dict, int], dict]):
        self.responder = responder
        self.requests: list[dict] = []
        self.authorizations: list[str | None] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    index = len(server.requests)
                    server.requests.append(body)
                    server.authorizations.append(self.headers.get("Authorization"))
                spec = server.responder(body, index)
                if "hang" in spec:
                    time.sleep(spec["hang"])
                    spec = {"texts": ["(too late)"]}
                status = spec.get("status", 200)
                if status != 200:
                    if "body" in spec:  # a server's own error body, verbatim
                        payload = spec["body"]
                    else:
                        payload = {"error": {"message": spec.get("message", f"scripted error {status}"),
                                             "type": spec.get("type", "scripted"), "code": spec.get("code"),
                                             "param": spec.get("param")}}
                        if spec.get("code") == "context_length_exceeded" and "message" not in spec:
                            payload["error"]["message"] = "This model's maximum context length is 1024 tokens."
                    self._send(status, payload, {"Retry-After": spec["retry_after"]} if "retry_after" in spec else {})
                    return
                texts = spec["texts"][:1] if spec.get("ignore_n") else spec["texts"]
                choices = []
                for i, t in enumerate(texts):
                    message = {"role": "assistant", "content": t}
                    if spec.get("reasoning"):  # vLLM / DeepSeek: reasoning in its own field
                        message[spec.get("reasoning_field", "reasoning_content")] = spec["reasoning"][i]
                    if spec.get("tool_args"):  # code returned as a tool call's arguments
                        message["tool_calls"] = [{"id": f"call-{index}-{i}", "type": "function", "function": {
                            "name": "submit_reward", "arguments": spec["tool_args"][i]}}]
                    reasons = spec.get("finish_reason", "stop")
                    choices.append({"index": i, "message": message,
                                    "finish_reason": reasons[i] if isinstance(reasons, list) else reasons})
                tokens = spec.get("completion_tokens", 50)
                self._send(200, {
                    "id": f"chatcmpl-{index}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "scripted"), "choices": choices,
                    "usage": {"prompt_tokens": 100, "completion_tokens": tokens * len(texts),
                              "total_tokens": 100 + tokens * len(texts)},
                })

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


TRANSCRIPTS = __import__("pathlib").Path(__file__).parent / "data" / "llm-transcripts"


def transcript_answers(task: str = "hopper-hop") -> dict[int, list[str]]:
    """A real model's answers to rewardgen's requests (``tests/data/llm-transcripts/TASK/resp-GGG-C.md``):
    ``{generation: [answer of sample 0, 1, ...]}``."""
    import re

    out: dict[int, list[str]] = {}
    for path in sorted((TRANSCRIPTS / task).glob("resp-*.md")):
        g, _c = (int(x) for x in re.fullmatch(r"resp-(\d+)-(\d+)\.md", path.name).groups())
        out.setdefault(g, []).append(path.read_text())
    return out


def replaying(answers: dict[int, list[str]]) -> Callable[[dict, int], dict]:
    """A responder that answers generation g's request (the generation its reflection names as the
    newest, plus one) with the recorded answers of generation g, in order; a fix request (a longer
    conversation) gets the same sample's recorded answer again."""
    import re

    def respond(body: dict, index: int) -> dict:
        text = "\n".join(str(m.get("content") or "") for m in body["messages"])
        said = re.search(r"generation (\d+) is the newest", text)
        g = min(int(said.group(1)) + 1 if said else 0, max(answers))
        return {"texts": answers[g][: body.get("n", 1)]}

    return respond

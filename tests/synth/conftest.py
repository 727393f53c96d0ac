"""Fixtures of the synth suite: the session's local Ray instance, an OpenAI-compatible stub server on
127.0.0.1, and sample documents (the tiny chat LLM, `tiny_llm`, is in tests/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CORPUS = REPO / "sample" / "corpus.jsonl"


@pytest.fixture(scope="session")
def synth_ray(ray_local) -> Any:
    """The session's local Ray instance (`ray_local`), without Ray Data's progress bars."""
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    return ray_local


@pytest.fixture(scope="session")
def sample_documents() -> list[dict[str, str]]:
    """The project's sample corpus as documents (doc_id, text, source)."""
    docs = []
    for line in SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            docs.append({"doc_id": row["doc_id"], "text": row["text"], "source": "sample"})
    assert len(docs) >= 6
    return docs


# --------------------------------------------------------------------------- OpenAI stub

Reply = tuple[int, Any, float]  # status, JSON body (dict) or raw text, delay in seconds


def document_of(body: dict[str, Any]) -> str:
    """The document of the last user message (as synth's prompts wrap it)."""
    content = body["messages"][-1]["content"]
    found = re.search(r"<document>\n(.*)\n</document>", content, re.S)
    return found.group(1) if found else content


def capitalised(text: str) -> list[str]:
    """Runs of capitalised words: a crude NER the stub answers with."""
    return re.findall(r"[A-Z][a-z]+(?: [A-Z][a-z]+)*", text)


def chat_completion(content: str, prompt_tokens: int = 100, completion_tokens: int = 20) -> dict[str, Any]:
    return {
        "id": "cmpl-stub",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


def ner_reply(body: dict[str, Any]) -> Reply:
    """Default behaviour: entities = capitalised runs, labelled with the schema's first label."""
    schema = (body.get("structured_outputs") or {}).get("json") or body["response_format"]["json_schema"][
        "schema"
    ]
    label = schema["$defs"]["Entity"]["properties"]["label"]
    labels = label.get("enum") or [label["const"]]
    entities = [{"text": t, "label": labels[0]} for t in capitalised(document_of(body))]
    return 200, chat_completion(json.dumps({"entities": entities})), 0.0


class OpenAIStub:
    """`POST /v1/chat/completions` on 127.0.0.1 (a thread with its own event loop). `reply`
    decides each answer; every request body is recorded; in-flight requests are tracked."""

    def __init__(self) -> None:
        self.reply: Callable[[dict[str, Any]], Reply] = ner_reply
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "stub server did not start"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def bodies_for(self, needle: str) -> list[dict[str, Any]]:
        return [b for b in self.bodies if needle in document_of(b)]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        with self._lock:
            self.bodies.append(body)
            self.headers.append(dict(request.headers))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            status, payload, delay = self.reply(body)
            if delay:
                await asyncio.sleep(delay)
            if isinstance(payload, str):
                return web.Response(status=status, text=payload)
            return web.json_response(payload, status=status)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStub]:
    stub = OpenAIStub()
    yield stub
    stub.stop()

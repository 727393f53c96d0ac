"""OpenAI-compatible HTTP engine against a real server on 127.0.0.1: structured-output body,
retries with backoff, timeouts, bounded concurrency, errors as completions."""

from __future__ import annotations

import json
import time

from synth import HttpEngineConfig, NerTask
from synth.engines.base import Request
from synth.engines.http import HttpEngine
from synth.tasks import build_spec
from tests.synth.conftest import chat_completion, document_of, ner_reply

SPEC = build_spec(NerTask(labels=["person", "organisation"]))


def request(text: str) -> Request:
    return Request(messages=SPEC.messages(text), schema=SPEC.schema, max_tokens=64, name="ner_answer")


def engine(stub, **overrides) -> HttpEngine:
    settings = {"base_url": stub.base_url, "model": "llama-3-8b", "backoff_s": 0.01, "timeout_s": 5.0}
    return HttpEngine(HttpEngineConfig(**{**settings, **overrides}))


def test_structured_outputs_body_and_answer(openai_stub) -> None:
    [completion] = engine(openai_stub, api_key="sk-test").generate([request("Ada Lovelace joined Acme.")])
    assert completion.ok and completion.finish_reason == "stop"
    assert json.loads(completion.text)["entities"][0] == {"text": "Ada Lovelace", "label": "person"}
    assert (completion.prompt_tokens, completion.completion_tokens) == (100, 20)
    [body] = openai_stub.bodies
    assert body["model"] == "llama-3-8b" and body["max_tokens"] == 64 and body["temperature"] == 0.0
    assert body["structured_outputs"] == {"json": SPEC.schema}
    assert "guided_json" not in body and "response_format" not in body
    assert body["messages"] == SPEC.messages("Ada Lovelace joined Acme.")
    assert openai_stub.headers[0]["Authorization"] == "Bearer sk-test"


def test_response_format_body(openai_stub) -> None:
    engine(openai_stub, structured_output="response_format").generate([request("Ada Lovelace joined Acme.")])
    [body] = openai_stub.bodies
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "ner_answer", "schema": SPEC.schema, "strict": True},
    }
    assert "structured_outputs" not in body


def test_retries_then_succeeds(openai_stub) -> None:
    failures = {"n": 0}

    def flaky(body):
        if failures["n"] < 2:
            failures["n"] += 1
            return 503, {"error": "overloaded"}, 0.0
        return ner_reply(body)

    openai_stub.reply = flaky
    [completion] = engine(openai_stub, max_retries=3).generate([request("Ada Lovelace joined Acme.")])
    assert completion.ok and completion.meta["attempts"] == 3
    assert len(openai_stub.bodies) == 3


def test_gives_up_after_retries_and_keeps_order(openai_stub) -> None:
    def reply(body):
        if "broken" in document_of(body):
            return 500, "internal error", 0.0
        return ner_reply(body)

    openai_stub.reply = reply
    texts = ["Ada Lovelace works.", "a broken one", "Grace Hopper works."]
    completions = engine(openai_stub, max_retries=2).generate([request(t) for t in texts])
    assert [c.ok for c in completions] == [True, False, True]
    assert "HTTP 500" in completions[1].error and "3 attempt" in completions[1].error
    assert json.loads(completions[2].text)["entities"][0]["text"] == "Grace Hopper"
    assert len(openai_stub.bodies_for("broken")) == 3


def test_client_errors_are_not_retried(openai_stub) -> None:
    openai_stub.reply = lambda body: (400, {"error": "bad schema"}, 0.0)
    [completion] = engine(openai_stub, max_retries=3).generate([request("Ada.")])
    assert not completion.ok and "HTTP 400" in completion.error and len(openai_stub.bodies) == 1


def test_timeout_is_an_engine_error(openai_stub) -> None:
    openai_stub.reply = lambda body: (200, chat_completion('{"entities": []}'), 1.0)
    start = time.perf_counter()
    [completion] = engine(openai_stub, timeout_s=0.2, max_retries=1).generate([request("Ada.")])
    assert not completion.ok and "timeout" in completion.error
    assert len(openai_stub.bodies) == 2 and time.perf_counter() - start < 1.5


def test_bad_body_and_refused_connection(openai_stub) -> None:
    openai_stub.reply = lambda body: (200, {"unexpected": True}, 0.0)
    [completion] = engine(openai_stub).generate([request("Ada.")])
    assert not completion.ok and "bad response" in completion.error
    closed = HttpEngine(HttpEngineConfig(base_url="http://127.0.0.1:9/v1", max_retries=1, backoff_s=0.01))
    [completion] = closed.generate([request("Ada.")])
    assert not completion.ok and "Connect" in completion.error


def test_concurrency_is_bounded(openai_stub) -> None:
    openai_stub.reply = lambda body: (*ner_reply(body)[:2], 0.1)
    completions = engine(openai_stub, max_concurrency=3).generate(
        [request(f"Person {i} Ada.") for i in range(9)]
    )
    assert all(c.ok for c in completions)
    assert openai_stub.max_in_flight == 3

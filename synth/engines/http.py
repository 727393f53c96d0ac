"""OpenAI-compatible HTTP engine (`vllm serve`, Ray Serve LLM): async aiohttp client with
bounded concurrency, retries with exponential backoff, and a per-request timeout.

Structured output per request, as current vLLM expects it:
- `structured_outputs`: body field `{"structured_outputs": {"json": schema}}` (what the OpenAI
  client sends for `extra_body={"structured_outputs": ...}`; vLLM >= 0.12 removed `guided_json`);
- `response_format`: `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`.

Retried: connection errors, timeouts, HTTP 408/429/5xx. Not retried: other 4xx (a bad request
stays bad). A request that still fails becomes a completion with `error` (row `engine_error`).

Ray Data LLM's own `HttpRequestProcessorConfig` was not used: in Ray 2.60 it has no request
timeout and fails the whole dataset when a request runs out of retries.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from synth.config import HttpEngineConfig
from synth.engines.base import BatchEngine, Completion, Request

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class _Retryable(Exception):
    """A failed attempt worth repeating: a timeout, a connection error, HTTP 408/429/5xx."""


class _Final(Exception):
    """A failed attempt that another try would not fix: another HTTP error, a malformed answer."""


class HttpEngine(BatchEngine):
    def __init__(self, config: HttpEngineConfig):
        self.config = config
        self.model_id = config.model
        self.url = f"{config.base_url}/chat/completions"

    def payload(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if self.config.structured_output == "structured_outputs":
            body["structured_outputs"] = {"json": request.schema}
        else:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.name, "schema": request.schema, "strict": True},
            }
        return body

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        return headers

    def generate(self, requests: list[Request]) -> list[Completion]:
        if not requests:
            return []
        return asyncio.run(self.agenerate(requests))

    async def agenerate(self, requests: list[Request]) -> list[Completion]:
        limit = asyncio.Semaphore(self.config.max_concurrency)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        connector = aiohttp.TCPConnector(limit=self.config.max_concurrency)
        async with aiohttp.ClientSession(
            timeout=timeout, connector=connector, headers=self.headers()
        ) as session:

            async def one(request: Request) -> Completion:
                async with limit:
                    return await self._send(session, request)

            return list(await asyncio.gather(*(one(r) for r in requests)))

    async def _send(self, session: aiohttp.ClientSession, request: Request) -> Completion:
        """One request, retried with exponential backoff; a failure becomes an error completion."""
        body = self.payload(request)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_retries + 1),
            wait=wait_exponential(multiplier=self.config.backoff_s, max=self.config.backoff_max_s),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    return await self._post(session, body, attempts - 1)
        except (_Retryable, _Final) as err:
            error = str(err)
        return Completion(error=f"{error} (after {attempts} attempt(s))", meta={"attempts": attempts})

    async def _post(self, session: aiohttp.ClientSession, body: dict[str, Any], retries: int) -> Completion:
        try:
            async with session.post(self.url, json=body) as response:
                if response.status == 200:
                    return parse_chat_completion(await response.json(content_type=None), retries)
                error = f"HTTP {response.status}: {(await response.text())[:300]}"
                raise (_Retryable if response.status in RETRY_STATUS else _Final)(error)
        except asyncio.TimeoutError as err:
            raise _Retryable(f"timeout after {self.config.timeout_s}s") from err
        except aiohttp.ClientError as err:
            raise _Retryable(f"{type(err).__name__}: {err}") from err
        except ValueError as err:  # a 200 whose body is not a chat completion
            raise _Final(f"bad response: {err}") from err


def parse_chat_completion(data: Any, retries: int = 0) -> Completion:
    """An OpenAI chat-completion body as a `Completion` (`ValueError` if it is not one)."""
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"]
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(f"no choices[0].message.content ({err!r})") from err
    usage = data.get("usage") or {}
    return Completion(
        text=text if isinstance(text, str) else None,
        error=None if isinstance(text, str) else "empty message content",
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason=choice.get("finish_reason"),
        meta={"attempts": retries + 1},
    )

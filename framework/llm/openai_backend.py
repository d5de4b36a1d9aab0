"""The ``openai`` backend: any OpenAI-compatible chat server over plain HTTP.

Works with Ollama (``http://127.0.0.1:11434/v1``), vLLM, llama.cpp's ``llama-server`` and
``transformers serve``. Configure it in registry.yaml::

    fusion:
      params:
        backend: openai
        base_url: http://127.0.0.1:11434/v1
        model: qwen2.5:1.5b-instruct
        api_key_env: OPENAI_API_KEY      # optional: the variable that holds the key

The key is read from the environment variable named by ``api_key_env``, never from the file.
There is no local tokenizer, so token counts are conservative estimates
(``framework.llm.estimate_tokens``); set ``context_window`` to the server's real window.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any, ClassVar

from pydantic import Field

from .backend import LLMBackend, LLMError, LLMUnavailable, Message

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://127.0.0.1:11434/v1"  # Ollama's OpenAI-compatible endpoint


def import_httpx() -> Any:
    """``httpx``, or ``LLMUnavailable`` saying how to install it (it is a base dependency)."""
    try:
        import httpx
    except ImportError as exc:
        raise LLMUnavailable(f"the openai backend needs the httpx package, which is not importable here "
                             f"({exc}); reinstall the framework (`pip install video-framework`) or "
                             "`pip install httpx`") from exc
    return httpx


class OpenAIBackend(LLMBackend):
    """Chat completions from an OpenAI-compatible server (``POST {base_url}/chat/completions``)."""

    name: ClassVar[str] = "openai"

    class Options(LLMBackend.Options):
        base_url: str = DEFAULT_BASE_URL
        model: str | None = None            # None: let the server pick (a server pinned to one model)
        api_key_env: str | None = None      # name of the environment variable holding the key
        timeout_s: float = 300.0            # per request; generation on a CPU can be slow
        connect_timeout_s: float = 5.0
        context_window: int = 8192
        concurrency: int = Field(4, ge=1, description="requests generate_many sends side by side (a server "
                                 "such as vLLM batches them; 1: one at a time)")

    def __init__(self, options: Any = None):
        super().__init__(options)
        self._client = None
        self._client_lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.options.base_url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        env = self.options.api_key_env
        if env:
            key = os.environ.get(env)
            if not key:
                raise LLMUnavailable(f"analyzers.fusion.params.api_key_env names ${env}, which is not set: "
                                     f"export {env}=<your key> (or remove api_key_env for a local server)")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _timeout(self) -> Any:
        return import_httpx().Timeout(self.options.timeout_s, connect=self.options.connect_timeout_s)

    def _http(self) -> Any:
        httpx = import_httpx()
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeout(), trust_env=False)
            return self._client

    def _unreachable(self, exc: Exception) -> LLMUnavailable:
        return LLMUnavailable(
            f"cannot reach the OpenAI-compatible server at {self.url} ({type(exc).__name__}: {exc}); start it "
            "(e.g. `ollama serve`, `transformers serve MODEL`, `vllm serve MODEL`) or fix "
            "analyzers.fusion.params.base_url in registry.yaml")

    def check_available(self) -> str | None:
        """Reachable means the server answered at all (some servers answer GET /models with an error)."""
        try:
            httpx = import_httpx()
        except LLMUnavailable as exc:
            return str(exc)
        try:
            # a one-off request: some servers close the connection after answering /models with an error
            httpx.get(f"{self.url}/models", headers=self._headers(), timeout=self.options.connect_timeout_s,
                      trust_env=False)
        except LLMUnavailable as exc:
            return str(exc)
        except httpx.HTTPError as exc:
            return str(self._unreachable(exc))
        return None

    def load(self) -> None:
        reason = self.check_available()
        if reason:
            raise LLMUnavailable(reason)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def generate(self, messages: list[Message], max_new_tokens: int, temperature: float = 0.0) -> str:
        httpx = import_httpx()

        body: dict[str, Any] = {"messages": messages, "max_tokens": int(max_new_tokens),
                                "temperature": float(temperature), "stream": False}
        if self.options.model:
            body["model"] = self.options.model
        try:
            try:
                resp = self._http().post(f"{self.url}/chat/completions", json=body, headers=self._headers())
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                # the server closed a kept-alive connection: retry once on a fresh one (a client of its
                # own: other requests of generate_many may be using the shared one)
                with httpx.Client(timeout=self._timeout(), trust_env=False) as fresh:
                    resp = fresh.post(f"{self.url}/chat/completions", json=body, headers=self._headers())
        except httpx.TimeoutException as exc:
            raise LLMError(f"{self.url}/chat/completions did not answer within {self.options.timeout_s:g} s; "
                           "raise analyzers.fusion.params.backend_options.timeout_s or lower max_new_tokens") from exc
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if resp.status_code in (401, 403):
            raise LLMUnavailable(f"{self.url} refused the request (HTTP {resp.status_code}): set the key in "
                                 f"${self.options.api_key_env or 'OPENAI_API_KEY'} and name that variable in "
                                 "analyzers.fusion.params.api_key_env")
        if resp.status_code >= 400:
            raise LLMError(f"{self.url}/chat/completions answered HTTP {resp.status_code}: {resp.text[:300]}")
        try:
            payload = resp.json()
            message = payload["choices"][0]["message"]
            content = message.get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"{self.url}/chat/completions answered something that is not a chat completion: "
                           f"{resp.text[:300]}") from exc
        usage = payload.get("usage") or {}
        logger.debug("openai backend: %s prompt tokens, %s completion tokens",
                     usage.get("prompt_tokens"), usage.get("completion_tokens"))
        return content

    def generate_many(self, chats: list[list[Message]], max_new_tokens: int,
                      temperature: float = 0.0) -> list[str]:
        """Up to ``concurrency`` requests side by side, answers in order. On a failure the first
        failing request's error is raised (the rest are cancelled or left to finish) with
        ``partial_answers``: the answers in order before it."""
        if self.options.concurrency <= 1 or len(chats) <= 1:
            return super().generate_many(chats, max_new_tokens, temperature)
        from concurrent.futures import ThreadPoolExecutor

        answers: list[str] = []
        with ThreadPoolExecutor(max_workers=min(self.options.concurrency, len(chats)),
                                thread_name_prefix="llm-request") as pool:
            futures = [pool.submit(self.generate, m, max_new_tokens, temperature) for m in chats]
            for i, future in enumerate(futures):
                try:
                    answers.append(future.result())
                except Exception as exc:
                    for later in futures[i + 1:]:
                        later.cancel()
                    exc.partial_answers = list(answers)  # type: ignore[attr-defined]
                    raise
        return answers

"""Any OpenAI-compatible server (vLLM, SGLang, Ollama, LM Studio, ``transformers serve``).

Each chunk is one ``POST {base_url}/chat/completions``: a text part with the chunk's span, then
for every frame a ``Frame at 12.5 s:`` text part followed by the frame as a JPEG ``image_url``
(a ``data:`` URL), then the instruction. ``prepare`` (CPU thread) encodes the JPEGs; ``generate``
sends the batch's requests concurrently, so a server that batches (vLLM, SGLang) sees them
together. The key is read from the environment variable ``api_key_env`` names, never from a file.
"""
from __future__ import annotations

import base64
import concurrent.futures as cf
import io
import logging
import os
from pathlib import Path
from typing import Any, ClassVar

from framework import AnalyzerUnavailable

from .base import Answer, Family, Request
from ..prompts import fmt_seconds, times_line

logger = logging.getLogger(__name__)


def jpeg_data_url(frame: Any, quality: int = 85) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAIEndpoint(Family):
    """A served VLM behind the OpenAI chat-completions API."""

    name: ClassVar[str] = "openai"
    accepts_times: ClassVar[str] = "a 'Frame at N s:' text part before each image"

    def __init__(self, options=None, *, base_url: str, model: str, api_key_env: str | None = None,
                 timeout_s: float = 120.0, jpeg_quality: int = 85):
        super().__init__(options)
        self.base_url = base_url.rstrip("/")
        self.model_name = model
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.jpeg_quality = jpeg_quality
        self.client: Any = None

    def load(self, folder: Path | None, device: str, precision: str | None, adapter: Path | None = None) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise AnalyzerUnavailable(f"the openai backend needs httpx ({exc}): pip install httpx") from exc
        headers = {}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise AnalyzerUnavailable(f"analyzers.qwen2_vl_temporal.params.api_key_env names {self.api_key_env}, "
                                          "which is not set in the environment")
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout_s)
        try:
            self.client.get("/models")
        except httpx.HTTPError as exc:
            self.client.close()
            self.client = None
            raise AnalyzerUnavailable(f"cannot reach the VLM server at {self.base_url} ({type(exc).__name__}: {exc}); "
                                      "start it, or fix analyzers.qwen2_vl_temporal.params.base_url") from exc
        self.device = self.base_url

    def message(self, req: Request) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"type": "text", "text": times_line(req.start, req.end, req.times)}]
        for t, frame in zip(req.times, req.frames):
            parts.append({"type": "text", "text": f"Frame at {fmt_seconds(t)} s:"})
            parts.append({"type": "image_url", "image_url": {"url": jpeg_data_url(frame, self.jpeg_quality)}})
        parts.append({"type": "text", "text": f"{req.context}{req.instruction}"})
        return [{"role": "user", "content": parts}]

    def prepare(self, requests: list[Request]) -> list[dict[str, Any]]:
        o = self.options
        bodies = []
        for r in requests:
            body: dict[str, Any] = {"model": self.model_name, "messages": self.message(r),
                                    "max_tokens": o.max_new_tokens, "temperature": o.temperature}
            if o.temperature == 0:
                body["seed"] = o.seed
            bodies.append(body)
        return bodies

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            resp = self.client.post("/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"VLM server {self.base_url}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200:
            raise RuntimeError(f"VLM server {self.base_url} answered HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def generate(self, prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(prepared) == 1:
            return [self._post(prepared[0])]
        with cf.ThreadPoolExecutor(len(prepared), thread_name_prefix="vlm-http") as pool:
            return list(pool.map(self._post, prepared))

    def decode(self, outputs: list[dict[str, Any]], prepared: Any) -> list[Answer]:
        answers = []
        for out in outputs:
            try:
                content = out["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError) as exc:
                raise RuntimeError(f"VLM server {self.base_url}: no choices[0].message.content in {str(out)[:200]}") from exc
            if isinstance(content, list):  # some servers answer in parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            usage = out.get("usage") or {}
            answers.append(Answer(text=str(content or "").strip(), prompt_tokens=int(usage.get("prompt_tokens") or 0),
                                  new_tokens=int(usage.get("completion_tokens") or 0)))
        return answers

    def describe_model(self) -> dict[str, Any]:
        return {"class": "openai-compatible endpoint", "base_url": self.base_url, "model": self.model_name}

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


__all__ = ["OpenAIEndpoint", "jpeg_data_url"]

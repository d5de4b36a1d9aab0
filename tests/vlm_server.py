"""A small OpenAI-compatible chat server that runs a tiny Qwen2-VL, for the endpoint backend's tests.

Run as its own process: ``python -m uvicorn vlm_server:app --port N`` (from ``tests/``) with
``VLM_SERVER_MODEL`` (the tiny model folder) and ``VLM_SERVER_LOG`` (a JSON-lines file) set. It
serves ``GET /v1/models`` and ``POST /v1/chat/completions``; each image part (a ``data:`` URL) is
decoded, the frames go through the model's processor as one video and the model generates the
answer. Every request is logged: its text parts, and each image's size and mean colour, so a
test can check which frames and times the client sent.
"""
from __future__ import annotations

import base64
import io
import json
import os
import threading
import time

import numpy as np
import torch
from fastapi import FastAPI, HTTPException
from PIL import Image
from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

MODEL_DIR = os.environ["VLM_SERVER_MODEL"]
LOG = os.environ["VLM_SERVER_LOG"]
NAME = os.environ.get("VLM_SERVER_NAME", "tiny-qwen2-vl")

processor = AutoProcessor.from_pretrained(MODEL_DIR)
model = Qwen2VLForConditionalGeneration.from_pretrained(MODEL_DIR, dtype=torch.float32).eval()
lock = threading.Lock()
served = [0]
app = FastAPI()


@app.get("/v1/models")
def models() -> dict:
    return {"object": "list", "data": [{"id": NAME, "object": "model"}]}


def _image(url: str) -> np.ndarray:
    if not url.startswith("data:image/"):
        raise HTTPException(400, "only data: URLs")
    raw = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


@app.post("/v1/chat/completions")
def chat(body: dict) -> dict:
    if body.get("model") != NAME:
        raise HTTPException(404, f"model {body.get('model')!r} not served")
    texts, frames = [], []
    for message in body["messages"]:
        content = message["content"]
        for part in ([{"type": "text", "text": content}] if isinstance(content, str) else content):
            if part["type"] == "text":
                texts.append(part["text"])
            elif part["type"] == "image_url":
                frames.append(_image(part["image_url"]["url"]))
    record = {"model": body["model"], "texts": texts, "max_tokens": body.get("max_tokens"),
              "images": [{"size": [f.shape[1], f.shape[0]], "mean": f.reshape(-1, 3).mean(0).round(2).tolist()}
                         for f in frames]}
    prompt = "<|vision_start|><|video_pad|><|vision_end|>" + "\n".join(texts)
    chat_text = processor.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                        add_generation_prompt=True)
    video = np.stack(frames + frames[-1:] * (len(frames) % 2))  # an even count for the temporal patch
    inputs = processor(text=[chat_text], videos=[video], return_tensors="pt")
    with lock, torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=int(body.get("max_tokens") or 8), do_sample=False)
    n_prompt = inputs["input_ids"].shape[1]
    answer = processor.tokenizer.decode(out[0, n_prompt:], skip_special_tokens=True)
    with lock, open(LOG, "a") as fh:
        answer = record["answer"] = f"answer {served[0]}: {answer}"  # numbered, so a test can find it later
        served[0] += 1
        fh.write(json.dumps(record) + "\n")
    return {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "model": NAME,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": int(n_prompt), "completion_tokens": int(out.shape[1] - n_prompt)}}

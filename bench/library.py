"""Library benchmark: index 1,000 videos' generated results, then time full-text and semantic search.

Every video gets a generated ``results.json`` (written to a temporary folder, read back by
``Library.add_run`` exactly as after ``framework run``): transcript segments, descriptions,
on-screen text and object labels (``data["text"]``), a summary with chapters and key moments, and a
``content_quality`` track with 512-dim shot embeddings. Texts are drawn from a Zipf-distributed
vocabulary, so some words are in most videos and some in a few.

Semantic search uses random weights of the real architectures (a MiniLM-L6 BERT, 384 dims, and
open_clip's ViT-B-32 text tower, 512 dims), built in memory and handed to the search (loading is
not timed; the tests cover the loading code). That times the real work of a query: tokenising,
one forward pass, a matrix product over the library and fetching the moments. It says nothing about
ranking quality.

    python bench/library.py                         # 1,000 videos, full text and semantic
    python bench/library.py --videos 50 --queries 30  # a quick check
    python bench/library.py --device cuda           # encoders on a GPU
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model, load_text  # noqa: E402

SYLLABLES = ("ka ri to ne sa mu lo pe vi da go ha ze ni fu ro sha ke mi tan ber lin cor vel ast".split())
ENGLISH = ("car red night harbour boat ferry dog snow city traffic rain lighthouse keeper bridge train station "
           "market crowd beach sunset mountain forest river kitchen chef interview speaker stage concert "
           "football goal referee bicycle helmet street sign logo screen laptop phone map window door").split()


def vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    words = set(ENGLISH)
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))))
    return sorted(words)


class Texts:
    """Sentences of Zipf-distributed words (rank 1 is the most frequent)."""

    def __init__(self, words: list[str], rng: random.Random):
        self.rng = rng
        self.words = list(words)
        rng.shuffle(self.words)
        weights = 1.0 / np.arange(1, len(self.words) + 1) ** 1.05
        self.cum = np.cumsum(weights / weights.sum())

    def word(self) -> str:
        return self.words[int(np.searchsorted(self.cum, self.rng.random()))]

    def sentence(self, lo: int, hi: int) -> str:
        return " ".join(self.word() for _ in range(self.rng.randint(lo, hi)))


def make_runs(root: Path, n: int, texts: Texts, rng: random.Random, shots: int) -> list[Path]:
    from framework.library.extract import encode_shot_embeddings
    from framework.timeline import Event, Timeline, Track, VideoMeta

    runs = []
    for v in range(n):
        duration = rng.uniform(60, 1800)
        meta = VideoMeta(path=f"/videos/video{v:04d}.mp4", content_hash=f"b2:{rng.getrandbits(256):064x}",
                         size_bytes=rng.randint(10**6, 10**9), duration=duration, has_video=True, width=1280,
                         height=720, fps=25.0)

        def spans(k: int) -> list[tuple[float, float]]:
            starts = sorted(rng.uniform(0, duration - 5) for _ in range(k))
            return [(s, s + rng.uniform(1, 5)) for s in starts]

        def track(name: str, label: str, k: int, lo: int, hi: int, provides=()) -> Track:
            return Track(analyzer=name, version="1", provides=list(provides), events=[
                Event(start=a, end=b, label=label, data={"text": texts.sentence(lo, hi)}) for a, b in spans(k)])

        chapters = [{"start": i * duration / 5, "end": (i + 1) * duration / 5, "title": texts.sentence(2, 5),
                     "summary": texts.sentence(10, 20)} for i in range(5)]
        summary = {"title": texts.sentence(3, 7), "paragraph": texts.sentence(30, 60), "chapters": chapters,
                   "key_moments": [{"time": a, "text": texts.sentence(5, 12)} for a, _ in spans(3)]}
        cuts = np.sort(rng.sample(range(1, int(duration)), shots - 1)).tolist()
        bounds = [0.0, *map(float, cuts), duration]
        vectors = np.random.default_rng(v).standard_normal((shots, 512)).astype(np.float32)
        tracks = {
            "speech_transcription": track("speech_transcription", "speech", 12, 8, 20, ("transcript",)),
            "vlm_description": track("vlm_description", "description", 8, 10, 25, ("descriptions",)),
            "text_overlay": track("text_overlay", "text", 4, 2, 5),
            "object_detection": track("object_detection", "object", 6, 1, 1),
            "fusion": Track(analyzer="fusion", version="1", provides=["summary"], data={"summary": summary}),
            "content_quality": Track(analyzer="content_quality", version="1", data={"shot_embeddings":
                                     encode_shot_embeddings("open-clip-vit-b-32", list(zip(bounds, bounds[1:])), vectors)}),
        }
        run = root / f"video{v:04d}"
        Timeline(framework_version="bench", video=meta, tracks=tracks).write(run / "results.json")
        runs.append(run)
    return runs


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def timed(fn, queries) -> list[float]:
    out = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t) * 1000)
    return out


def row(name: str, ms: list[float]) -> str:
    return (f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {percentile(ms, 95):.1f} | "
            f"{percentile(ms, 99):.1f} | {max(ms):.1f} |")


def sentence_encoder(words: list[str], device: str):
    """A MiniLM-L6-sized BERT with random weights and a WordPiece vocabulary of the bench's words."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    from framework.library.encoders import SentenceEncoder

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    vocab += [f"[unused{i}]" for i in range(30522 - len(vocab))]
    enc = SentenceEncoder.__new__(SentenceEncoder)  # built in memory: no folder to load from
    enc.id, enc.device, enc.max_length, enc.batch_size, enc._torch = "all-minilm-l6-v2", device, 256, 64, torch
    enc.tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    torch.manual_seed(0)
    enc.model = BertModel(BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                     intermediate_size=1536, max_position_embeddings=512)).to(device).eval()
    return enc


def clip_encoder(device: str):
    """open_clip ViT-B-32 with random weights (its text tower encodes the query)."""
    import open_clip
    import torch

    from framework.library.encoders import ClipTextEncoder

    enc = ClipTextEncoder.__new__(ClipTextEncoder)
    enc.id, enc.device, enc._torch, enc.kind = "open-clip-vit-b-32", device, torch, "open_clip"
    enc.model = open_clip.create_model("ViT-B-32", pretrained=None, device=device).eval()
    enc.tokenizer = open_clip.get_tokenizer("ViT-B-32")
    return enc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--shots", type=int, default=20, help="shot embeddings per video")
    ap.add_argument("--queries", type=int, default=300, help="full-text queries (semantic: a third)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda for the encoders")
    ap.add_argument("--no-semantic", action="store_true")
    ap.add_argument("--embed-sample", type=int, default=1000,
                    help="texts embedded for real to time the embedding rate (the rest get random unit vectors)")
    ap.add_argument("--embed-all", action="store_true", help="embed every text with the model (slow on a CPU)")
    ap.add_argument("--keep", type=Path, help="keep the generated runs and library in this folder")
    ap.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = ap.parse_args()

    from framework.library import Library, search
    from framework.library.encoders import Encoders

    rng = random.Random(2026)
    words = vocabulary(rng)
    texts = Texts(words, rng)
    root = Path(tempfile.mkdtemp(prefix="bench-library-")) if args.keep is None else args.keep
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"machine: {cpu_model()}, {os.cpu_count()} CPUs; load {load_text()} at start; python "
             f"{sys.version.split()[0]}; {args.videos} videos, {args.shots} shot embeddings each"]
    try:
        t = time.perf_counter()
        runs = make_runs(root / "runs", args.videos, texts, rng, args.shots)
        generate_s = time.perf_counter() - t
        lib = Library.open(root / "library.db")
        t = time.perf_counter()
        for run in runs:
            lib.add_run(run)
        index_s = time.perf_counter() - t
        db = lib.connection()
        moments = db.execute("SELECT count(*) FROM moments").fetchone()[0]
        shots = db.execute("SELECT count(*) FROM shot_vectors").fetchone()[0]
        size_mb = sum(p.stat().st_size for p in root.glob("library.db*")) / 2**20
        lines.append(f"generated {len(runs)} results.json in {generate_s:.1f} s; indexed {len(runs)} videos "
                     f"({moments} text moments, {shots} shot vectors) in {index_s:.1f} s: "
                     f"{len(runs) / index_s:.1f} videos/s, {moments / index_s:.0f} moments/s; library "
                     f"{size_mb:.1f} MB")

        qrng = random.Random(7)
        share = {w: db.execute("SELECT count(*) FROM moments_fts WHERE moments_fts MATCH ?", (f'"{w}"',)).fetchone()[0]
                 / max(moments, 1) for w in texts.words[:300]}
        stop = [w for w in texts.words[:300] if share[w] > 0.5]  # in most moments, as "the" is in English text
        common = [w for w in texts.words[:300] if share[w] <= 0.5][:200]
        rare = texts.words[500:]
        queries = []
        for i in range(args.queries):
            kind = i % 5
            if kind == 0:
                queries.append(qrng.choice(common))
            elif kind == 1:
                queries.append(qrng.choice(rare))
            elif kind == 2:
                queries.append(f"{qrng.choice(common)} {qrng.choice(rare)}")
            elif kind == 3:  # three words by frequency: stop words included
                queries.append(" ".join(texts.word() for _ in range(3)))
            else:
                queries.append(f'"{texts.word()} {texts.word()}"')
        videos = [f"video{qrng.randrange(args.videos):04d}" for _ in queries]
        search(lib, "warm up", mode="text")
        table = ["| search | queries | p50 ms | p95 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
        ft = timed(lambda q: search(lib, q, mode="text", limit=20), queries)
        table.append(row("full text", ft))
        table.append(row("full text, one analyzer",
                         timed(lambda q: search(lib, q, mode="text", limit=20, analyzers=["speech_transcription"]),
                               queries)))
        it = iter(videos)
        table.append(row("full text, one video", timed(lambda q: search(lib, q, mode="text", limit=20,
                                                                       videos=[next(it)]), queries)))
        if stop:
            table.append(row(f"worst case: a stop word alone ({len(stop)} words in >50% of moments)",
                             timed(lambda q: search(lib, q, mode="text", limit=20), stop * 5)))
        if not args.no_semantic:
            encoders = Encoders()  # the encoders handed over below are used as they are
            t = time.perf_counter()
            sentence = sentence_encoder(words, args.device)
            encoders.add("sentence", "all-minilm-l6-v2", sentence)
            encoders.add("clip", "open-clip-vit-b-32", clip_encoder(args.device))
            build_s = time.perf_counter() - t
            todo = lib.texts_without_vectors("all-minilm-l6-v2")
            sample = todo if args.embed_all else todo[: args.embed_sample]
            t = time.perf_counter()
            for i in range(0, len(sample), 256):  # what the first semantic search does, in the same batches
                chunk = sample[i:i + 256]
                lib.store_text_vectors("all-minilm-l6-v2", [k for k, _ in chunk], sentence.encode([x for _, x in chunk]))
            embed_s = time.perf_counter() - t
            rest = todo[len(sample):]
            if rest:  # the matrix gets its full size; a query's cost depends on its size, not its values
                filler = np.random.default_rng(0).standard_normal((len(rest), 384)).astype(np.float32)
                filler /= np.linalg.norm(filler, axis=1, keepdims=True)
                lib.store_text_vectors("all-minilm-l6-v2", [k for k, _ in rest], filler)
            search(lib, "warm up", mode="semantic", encoders=encoders)
            lines.append(f"semantic: random-weight MiniLM-L6 (384-d) and ViT-B-32 text tower (512-d) built in "
                         f"{build_s:.1f} s on {args.device} ({_threads()} torch threads); embedded {len(sample)} of "
                         f"{len(todo)} distinct texts in {embed_s:.1f} s ({len(sample) / max(embed_s, 1e-9):.0f} "
                         f"texts/s)" + (f"; the other {len(rest)} got random unit vectors (--embed-all embeds "
                                        "them all)" if rest else ""))
            sq = [q.strip('"') for q in queries[: max(10, args.queries // 3)]]

            def cold(view):  # every query encoded from scratch (the app remembers the last 256)
                def run(q):
                    encoders.forget_queries()
                    return search(lib, q, mode="semantic" if view is not encoders else "auto", limit=20, encoders=view)
                return run

            table.append(row("sentence embeddings only", timed(cold(_only(encoders, "sentence")), sq)))
            table.append(row("CLIP text-to-image only", timed(cold(_only(encoders, "clip")), sq)))
            table.append(row("hybrid (full text + both)", timed(cold(encoders), sq)))
        lines.append(f"load at end: {load_text()}")
        lines.append("full-text query mix: a common word (not a stop word), a rare word, common + rare, three words "
                     "drawn by frequency (stop words included), a two-word phrase; one fifth each")
        target = "met" if percentile(ft, 95) < 100 else "NOT met"
        lines.append(f"target p95 < 100 ms for full-text search: {target} ({percentile(ft, 95):.1f} ms)")
        text = "\n".join(lines) + "\n\n" + "\n".join(table) + "\n"
        print(text)
        if args.out:
            args.out.write_text(text, encoding="utf-8")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


class _only:  # noqa: N801 - an Encoders view with one kind of encoder
    def __init__(self, encoders, kind: str):
        self.encoders, self.kind = encoders, kind

    def query_vector(self, encoder, text):
        return self.encoders.query_vector(encoder, text)

    def sentence(self, model_id="all-minilm-l6-v2"):
        return self.encoders.sentence(model_id) if self.kind == "sentence" else (None, "not in this measurement")

    def clip(self, model_id):
        return self.encoders.clip(model_id) if self.kind == "clip" else (None, "not in this measurement")


if __name__ == "__main__":
    raise SystemExit(main())

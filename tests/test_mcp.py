"""The MCP server through the official SDK's client over stdio (`framework mcp` in a subprocess):
list the tools, search, list videos, a summary, events in a time range, start an analysis and
follow it to the library, and errors that come back as tool errors."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path


from framework.library import Library
from framework.testing.synth import default_shots, make_video
from framework.timeline import Event, Track
from library_helpers import fake_run, fake_video, write_registry

REPO = Path(__file__).resolve().parents[1]
SUMMARY = {"title": "Harbour at dawn", "paragraph": "Boats leave the harbour.",
           "chapters": [{"start": 0.0, "end": 20.0, "title": "Departure", "summary": "The ferry leaves."}]}


def _payload(result) -> dict:
    return json.loads(result.content[0].text)


def _is_error(result) -> bool:
    return bool(getattr(result, "is_error", getattr(result, "isError", False)))


async def _session(args: list[str], calls):
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "cli", "mcp", *args], cwd=str(REPO),
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await calls(session)


def test_the_mcp_server_over_stdio(tmp_path):
    lib_path = tmp_path / "lib" / "library.db"
    lib = Library.open(lib_path)
    shots = Track(analyzer="cut_analysis", version="1", events=[Event(start=0, end=5, label="shot"),
                                                                 Event(start=5, end=12, label="shot")])
    harbour = lib.add_run(fake_run(tmp_path / "runs" / "harbour", fake_video(tmp_path / "harbour.mp4"),
                                   [(3.0, 4.0, "a lighthouse blinks"), (9.0, 10.0, "gulls over the pier")],
                                   summary=SUMMARY, extra_tracks={"cut_analysis": shots}))
    media = tmp_path / "media"
    media.mkdir()
    new_video = make_video(media / "forest.mp4", default_shots(1.2)).path
    registry = write_registry(tmp_path / "config", {"forest": [[0.5, 1.0, "deer crossing a forest road"]]})

    async def calls(s):
        out = {"tools": sorted(t.name for t in (await s.list_tools()).tools)}
        out["search"] = _payload(await s.call_tool("search_videos", {"query": "lighthouse", "limit": 3}))
        out["list"] = _payload(await s.call_tool("list_videos", {}))
        out["summary"] = _payload(await s.call_tool("video_summary", {"video": "harbour.mp4"}))
        out["events"] = _payload(await s.call_tool("video_events", {"video": str(harbour.id), "start": 2.5, "end": 6.0}))
        out["bad_video"] = await s.call_tool("video_summary", {"video": "nothing.mp4"})
        out["file_url"] = await s.call_tool("start_analysis", {"source": "file:///etc/passwd"})
        out["outside"] = await s.call_tool("start_analysis", {"source": str(tmp_path / "harbour.mp4")})
        job = _payload(await s.call_tool("start_analysis", {"source": str(new_video)}))
        out["job"] = job
        out["done"] = _payload(await s.call_tool("analysis_status", {"job_id": job["id"], "wait_seconds": 240}))
        out["found"] = _payload(await s.call_tool("search_videos", {"query": "deer forest"}))
        return out

    out = asyncio.run(_session(["--library", str(lib_path), "--registry", str(registry),
                                "--media-root", str(media), "--offline"], calls))

    assert out["tools"] == ["analysis_status", "list_videos", "search_videos", "start_analysis", "video_events",
                            "video_summary"]
    hit = out["search"]["hits"][0]
    assert (hit["video_name"], hit["start"], hit["end"], hit["text"]) == ("harbour.mp4", 3.0, 4.0, "a lighthouse blinks")
    assert hit["link"].endswith("report.html#t=3.00") and out["search"]["ranking"].startswith("full-text")
    assert [v["name"] for v in out["list"]["videos"]] == ["harbour.mp4"]
    assert out["summary"]["title"] == "Harbour at dawn" and out["summary"]["chapters"] == [
        {"start": 0.0, "end": 20.0, "text": "Departure — The ferry leaves."}]
    events = [(e["analyzer"], e["label"], e["start"], e.get("text")) for e in out["events"]["events"]]
    assert events == [("cut_analysis", "shot", 0.0, None), ("captions", "caption", 3.0, "a lighthouse blinks"),
                      ("cut_analysis", "shot", 5.0, None)]
    assert _is_error(out["bad_video"]) and "not in the library" in out["bad_video"].content[0].text
    assert _is_error(out["file_url"]) and "only http:// and https://" in out["file_url"].content[0].text
    assert _is_error(out["outside"]) and "outside the folders" in out["outside"].content[0].text
    assert out["job"]["status"] == "queued" and out["job"]["kind"] == "path"
    done = out["done"]
    assert done["status"] == "done" and done["progress"] == 1.0 and done["video_id"], done
    assert Path(done["run_dir"]).parent == lib_path.parent / "runs"
    found = out["found"]["hits"][0]
    assert (found["video_name"], found["start"], found["analyzer"]) == ("forest.mp4", 0.5, "test_captions")
    assert Library.open(lib_path).count() == 2


def test_the_mcp_command_is_documented_in_help():
    from click.testing import CliRunner

    from cli import main

    text = CliRunner().invoke(main, ["mcp", "--help"]).output
    assert "stdio" in text and "framework mcp --library" in text


def test_the_mcp_command_hands_the_gpu_options_to_the_analyses_it_starts(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import framework.mcp_server as mcp_server
    from cli import main

    seen = []
    monkeypatch.setattr(mcp_server, "run_stdio", lambda library, **kw: seen.append(kw))
    ok = CliRunner().invoke(main, ["mcp", "--library", str(tmp_path / "lib.db"), "--vram-budget", "24GB",
                                   "--devices", "cuda:1"])
    assert ok.exit_code == 0, ok.output
    assert seen[0]["vram_budget"] == "24GB" and seen[0]["devices"] == ["cuda:1"]
    bad = CliRunner().invoke(main, ["mcp", "--vram-budget", "-3GB"])
    assert bad.exit_code == 2 and "VRAM budget" in bad.output and len(seen) == 1

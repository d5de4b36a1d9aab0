"""The video library: every finished run, indexed for search across all of a user's videos.

A SQLite file (default ``$FRAMEWORK_HOME/library/library.db``; ``$FRAMEWORK_LIBRARY`` or
``--library PATH`` for another) holds each video's metadata and content hash, its run folder, and
every moment that carries text: events with ``data["text"]`` (descriptions, transcript segments,
on-screen text, object labels), the summary, its chapters and key moments. Search ranks them with
SQLite FTS5 (BM25) and, when the embedding models are cached, with a sentence-embedding model over
the texts and CLIP text-to-image similarity over the shot embeddings ``content_quality`` keeps.

Modules (each small; none is imported by the runner):

- ``paths``: where the library lives (its database and folder: uploads, downloads, run folders).
- ``store``: ``Library``: add a run, remove, list, find a video (also after it moved), reindex.
- ``extract``: a ``Timeline`` -> the moments to index and the shot embeddings (their format).
- ``search``: full-text, semantic and hybrid ranking (``search(library, "a red car at night")``).
- ``encoders``: the sentence-embedding and CLIP text encoders, loaded from local model folders.
- ``inputs``: ``framework run`` arguments (files, folders, glob patterns) -> the media files.
- ``batch``: finished-video markers (a rerun skips unchanged videos cheaply) and the summary table.
- ``jobs``: a queue of analyses with live progress (used by ``framework serve`` and the MCP server).
- ``fetch``: submitted URLs (http/https only) and uploads, with size limits, into the library folder.

Example::

    from framework.library import Library, search
    lib = Library.open()                       # $FRAMEWORK_HOME/library/library.db
    lib.add_run("runs/clip")                   # what `framework run` does after each video
    for hit in search(lib, "lighthouse at dawn").hits:
        print(hit.video_name, hit.start, hit.text, hit.link)
"""
from __future__ import annotations

from .paths import default_library_path
from .store import Library, LibraryError, Moment, VideoRecord
from .search import Hit, SearchResult, search  # binds ``search`` to the function, not the submodule

__all__ = ["Hit", "Library", "LibraryError", "Moment", "SearchResult", "VideoRecord", "default_library_path",
           "search"]

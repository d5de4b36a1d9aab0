"""``source: huggingface``: a repo in the Hugging Face hub cache, through huggingface_hub.

``pull`` is ``snapshot_download`` (files already cached are skipped, so an interrupted pull
continues with the files it lacks); loads read the snapshot of the manifest's pinned commit,
else the commit ``pull`` locked, else ``main``. Prune deletes through huggingface_hub's cache API.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlparse

from ...errors import ModelError
from ..cache import CachedModel
from ..digest import file_digest, git_blob_sha1
from ..download import is_network_error, quiet_tqdm, unreachable, unresolvable
from ..fsguard import deletion_refusal, lock_is_held, tree_size
from .base import ModelSource, Progress

if TYPE_CHECKING:
    from ..cache import CacheScan
    from ..lockfile import ModelLock
    from ..manifest import ModelSpec
    from ..prune import PruneItem
    from ..roots import CacheRoots
    from ..verify import VerifyResult

_HF_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_ENDPOINT = "https://huggingface.co"


def hf_busy(repo_path: Path, hub: Path) -> list[str]:
    """Unfinished downloads of a cached repo: ``.incomplete`` blobs and held ``.locks``."""
    busy = [f"{p} is an unfinished download (.incomplete)" for p in sorted((repo_path / "blobs").glob("*.incomplete"))]
    locks = hub / ".locks" / repo_path.name
    if locks.is_dir():
        busy += [f"{p} is held by a running download" for p in sorted(locks.rglob("*.lock")) if lock_is_held(p)]
    return busy


def hf_delete_strategy(scan: CacheScan, paths: list[Path], revisions: list[str]) -> Any:
    """huggingface_hub's delete strategy for ``revisions`` of the repos at ``paths`` only.

    ``HFCacheInfo.delete_revisions`` looks a commit hash up in every cached repo, and a renamed
    repo keeps its commits (``models--bert-base-uncased`` and ``models--google-bert--bert-base-uncased``),
    so the strategy is built from a copy of the scan that holds only the repos at ``paths``.
    """
    wanted = {Path(p) for p in paths}
    own = dataclasses.replace(scan.hf_info, repos=frozenset(r for r in scan.hf_info.repos
                                                            if Path(r.repo_path) in wanted))
    return own.delete_revisions(*revisions)


def hf_refusal(scan: CacheScan, paths: list[Path], revisions: list[str]) -> str | None:
    """Check every path huggingface_hub's delete strategy would touch, and every snapshot link.

    The strategy is built from the repos at ``paths`` only (see ``hf_delete_strategy``); a
    strategy path outside those repos would still be refused.
    """
    hub = scan.roots.hf_hub
    for repo_path in paths:
        if reason := deletion_refusal(repo_path, hub):
            return reason
        for dirpath, _dirs, files in os.walk(repo_path / "snapshots"):
            for name in files:
                if reason := deletion_refusal(Path(dirpath) / name, hub):
                    return reason
    if scan.hf_info is None or not revisions:
        return None
    strategy = hf_delete_strategy(scan, paths, revisions)
    for group in (strategy.repos, strategy.snapshots, strategy.refs, strategy.blobs, strategy.files):
        for p in group:
            if reason := deletion_refusal(Path(p), hub):
                return reason
            if not any(Path(p) == r or Path(p).is_relative_to(r) for r in paths):
                return f"{p} lies outside the repo(s) being pruned ({', '.join(str(r) for r in paths)})"
    return None


def hf_snapshot(spec: ModelSpec, roots: CacheRoots, revision: str, repo_id: str | None = None) -> Path | None:
    """The snapshot folder of ``revision`` (a commit or a ref) if huggingface_hub finds it complete.

    huggingface_hub saves the repo's tree listing when a download starts and, offline
    (``local_files_only``), refuses a snapshot that lacks a listed file (``ignore`` applied).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    for rid in [repo_id] if repo_id else spec.repo_ids:
        try:
            return Path(snapshot_download(rid, revision=revision, cache_dir=roots.hf_hub, local_files_only=True,
                                          ignore_patterns=list(spec.ignore) or None))
        except (LocalEntryNotFoundError, OSError, ValueError):
            continue
    return None


class HuggingFace(ModelSource):
    name: ClassVar[str] = "huggingface"
    has_commits: ClassVar[bool] = True

    def validate(self, spec: ModelSpec) -> None:
        for repo in (spec.locator, *spec.aliases):
            if not _HF_REPO_RE.match(repo) or ".." in repo:
                raise ValueError(f"locator/alias {repo!r} is not a Hugging Face repo id like 'org/name'")
        if spec.revision is not None and not _COMMIT_RE.match(spec.revision):
            raise ValueError(f"revision {spec.revision!r} is not a 40-hex commit hash; a branch such as "
                             "'main' is not a pin: use null (unpinned; `pull` records the commit it fetched)")

    def pinned(self, spec: ModelSpec) -> bool:
        return spec.revision is not None

    def scan(self, spec: ModelSpec, roots: CacheRoots, scan: CacheScan) -> CachedModel:
        cm = CachedModel(spec, root=roots.hf_hub)
        for rid in spec.repo_ids:
            repo = scan.hf_repos.get(rid.lower())
            if repo is None:
                continue
            cm.paths.append(repo.repo_path)
            cm.revisions += sorted(r.commit_hash for r in repo.revisions)
            complete = [r for r in repo.revisions
                        if r.files and hf_snapshot(spec, roots, r.commit_hash, repo.repo_id) is not None]
            cm.cached = cm.cached or bool(complete)
            cm.partial = cm.partial or len(complete) < len(repo.revisions)
            cm.size_on_disk += tree_size(repo.repo_path)
            cm.busy += hf_busy(repo.repo_path, roots.hf_hub)
        return cm

    def local_path(self, spec: ModelSpec, roots: CacheRoots, lock: ModelLock) -> Path | None:
        if not roots.hf_hub.is_dir():
            return None
        entry = lock.get(spec.id) or {}
        return hf_snapshot(spec, roots, spec.revision or entry.get("revision") or "main")

    def revision(self, spec: ModelSpec, path: Path, lock: ModelLock) -> str | None:
        return path.name  # snapshots/<commit>

    def pull(self, spec: ModelSpec, roots: CacheRoots, lock: ModelLock, update: bool, progress: bool) -> Path:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                            RevisionNotFoundError)

        entry = lock.get(spec.id) or {}
        revision = spec.revision or (None if update else entry.get("revision"))
        endpoint = os.environ.get("HF_ENDPOINT") or None  # read now, like every other setting here
        host = urlparse(endpoint or DEFAULT_ENDPOINT).netloc
        no_name = unresolvable(host)
        if no_name is not None:  # (not huggingface_hub's five retries of a connection that cannot be made)
            raise unreachable(spec.locator, host, no_name)
        try:
            path = snapshot_download(spec.locator, revision=revision, cache_dir=roots.hf_hub,
                                     ignore_patterns=list(spec.ignore) or None, endpoint=endpoint,
                                     tqdm_class=None if progress else quiet_tqdm())
        except GatedRepoError:
            raise ModelError(f"{spec.locator} is gated: accept its license on huggingface.co and log in "
                             "with `hf auth login`") from None
        except RevisionNotFoundError:
            raise ModelError(f"{spec.locator} has no revision {revision}; fix the manifest pin or pull with "
                             "--update") from None
        except RepositoryNotFoundError:
            raise ModelError(f"{spec.locator} was not found on the hub (private? renamed?)") from None
        except (LocalEntryNotFoundError, ConnectionError, OSError) as exc:
            raise unreachable(spec.locator, host, exc) from None
        except Exception as exc:
            if is_network_error(exc):  # httpx2 transport errors (dropped connection, timeout)
                raise unreachable(spec.locator, host, exc) from None
            raise
        return Path(path)

    def lock_entry(self, spec: ModelSpec, path: Path) -> dict[str, Any]:
        files = {f.relative_to(path).as_posix(): {"size": f.stat().st_size, "blob": f.resolve().name}
                 for f in sorted(path.rglob("*")) if f.is_file()}
        return {"source": spec.source, "locator": spec.locator, "revision": path.name, "files": files}

    def verify(self, spec: ModelSpec, cm: CachedModel, entry: dict[str, Any] | None, res: VerifyResult,
               hashes: bool, progress: Progress | None) -> None:
        """Every file of every cached revision against its blob name (SHA-256 for LFS files, git
        blob SHA-1 for small ones); the pinned or locked commit must be cached."""
        locked = entry.get("revision") if entry else None
        pinned = spec.revision or locked
        if pinned:
            res.checks.append(f"revision {pinned[:12]} cached")
            if pinned not in cm.revisions:
                res.problems.append(f"revision {pinned} ({'manifest' if spec.revision else 'lock'}) is not cached; "
                                    f"cached: {', '.join(r[:12] for r in cm.revisions) or 'none'}")
        seen: set[Path] = set()
        n = 0
        for repo in cm.paths:
            for snap in sorted((repo / "snapshots").iterdir()) if (repo / "snapshots").is_dir() else []:
                for f in sorted(p for p in snap.rglob("*") if not p.is_dir()):
                    blob = f.resolve()
                    if blob in seen:
                        continue
                    seen.add(blob)
                    if locked and entry and snap.name == locked:
                        rec = entry.get("files", {}).get(f.relative_to(snap).as_posix())
                        if rec and rec.get("size") is not None and rec["size"] != blob.stat().st_size:
                            res.problems.append(f"{f.relative_to(repo)}: size {blob.stat().st_size}, "
                                                f"lock says {rec['size']}")
                    if not hashes:
                        continue
                    name = blob.name
                    if _SHA256.match(name):
                        got, kind = file_digest(blob, "sha256", progress), "sha256"
                    elif _SHA1.match(name):
                        got, kind = git_blob_sha1(blob, progress), "git sha1"
                    else:
                        res.notes.append(f"{f.relative_to(repo)}: blob name {name!r} is not a hash; not checked")
                        continue
                    n += 1
                    if got != name:
                        res.problems.append(f"{f.relative_to(repo)}: {kind} {got[:12]}..., "
                                            f"blob name says {name[:12]}...")
        if hashes:
            res.checks.append(f"{n} file hash(es) vs blob names")

    def busy(self, spec: ModelSpec, path: Path, roots: CacheRoots) -> list[str]:
        return hf_busy(path, roots.hf_hub)

    def refusal(self, scan: CacheScan, paths: list[Path], root: Path | None, revisions: list[str]) -> str | None:
        return hf_refusal(scan, paths, revisions)

    def delete(self, item: PruneItem, scan: CacheScan) -> None:
        if scan.hf_info is None:
            raise RuntimeError("no Hugging Face cache scan")
        hf_delete_strategy(scan, item.paths, item.revisions).execute()  # the item's own repos only
        leftovers = [p for p in item.paths if p.exists()]
        if leftovers:
            raise RuntimeError(f"huggingface_hub left {leftovers[0]} behind")

    def check_pin(self, api: Any, spec: ModelSpec, endpoint: str | None) -> tuple[str, str | None]:
        """Ask the hub about ``spec``'s pin: (status, commit ``main`` points to now); see ``PinCheck``."""
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

        status, main = "unpinned", None
        try:
            main = api.model_info(spec.locator).sha
            if spec.revision:
                api.model_info(spec.locator, revision=spec.revision)
                status = "ok"
        except RevisionNotFoundError:
            status = "missing"
        except GatedRepoError:
            status = "gated"
        except RepositoryNotFoundError:
            status = "repo-missing"
        except Exception as exc:
            if isinstance(exc, (ConnectionError, OSError)) or is_network_error(exc):
                host = urlparse(endpoint or DEFAULT_ENDPOINT).netloc
                raise ModelError(f"cannot reach {host} to check {spec.id} ({type(exc).__name__}); "
                                 "check-pins needs the network") from None
            raise
        return status, main

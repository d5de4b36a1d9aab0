"""Ways to run many videos: ``local`` (one after the other in this process, ``framework.runner.run_many``)
and ``ray`` (each video a Ray task on this machine or a cluster, ``framework.executors.ray_executor``).

Nothing here imports Ray until a Ray run starts: ``framework --help`` and plugin discovery never load it.
"""
from __future__ import annotations

EXECUTORS = ("local", "ray")

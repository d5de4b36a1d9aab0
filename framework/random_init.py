"""Building a model whose every weight is then loaded from a checkpoint, without its random initialisation.

A library that builds a model from its config before loading the checkpoint into it (open_clip's
``create_model``, openai-whisper's ``load_model``) first fills every weight with random values that the
checkpoint then overwrites: wasted work. For open_clip's ViT-B-32 it was 0.73 s of the 0.92 s its
construction took on a CPU of the 2-core test machine (``torch.nn.init``'s ``uniform_`` and ``normal_``
under cProfile), in the run's own process beside the other analyzers' threads.

``skipped()`` makes ``torch.nn.init``'s in-place initialisers leave their tensors as allocated while it
is active. Use it only around code that then loads a checkpoint *strictly* (every parameter and
persistent buffer, or an error), so that no value left as allocated survives. transformers'
``from_pretrained`` does the same on its own (``no_init_weights``). The initialisers are module
attributes shared by every thread of the process: the run's loads take turns (``Executor``'s load
turns), and a lock keeps two of these blocks from interleaving.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

#: torch.nn.init's in-place initialisers (those a module's ``reset_parameters`` calls)
INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                "sparse_")
_LOCK = threading.Lock()


def _left_as_allocated(tensor: Any, *args: Any, **kwargs: Any) -> Any:
    return tensor


@contextlib.contextmanager
def skipped() -> Iterator[None]:
    """While active, ``torch.nn.init``'s initialisers return their tensor untouched (restored after,
    also after an exception)."""
    import torch.nn.init as init

    with _LOCK:
        saved = {name: getattr(init, name) for name in INITIALISERS if hasattr(init, name)}
        for name in saved:
            setattr(init, name, _left_as_allocated)
        try:
            yield
        finally:
            for name, function in saved.items():
                setattr(init, name, function)


__all__ = ["INITIALISERS", "skipped"]

"""Faster decoding for transformers' ``generate`` on CUDA, shared by every local model that writes text.

- ``decode_graphs``: each one-token decoding step over a static KV cache replayed as a CUDA graph
  (``DecodeGraphs`` stands in for the model's ``forward``), behind a gate that captures only when
  nothing else uses the GPU (``capture_gate``, ``Placement.gpu_to_itself``);
- ``greedy_loop``: for greedy search, the whole step (forward, token choice, next inputs) one graph;
- ``joint_decode``: a batch prefilled in groups of similar prompt length, then decoded as one (an experiment);
- ``decode_attention``: a decoding step's attention, on a GPU as ``decode_kernel``'s Triton kernels
  (flash-decoding: the cache read in stretches by programs for every multiprocessor), elsewhere as two
  matrix products per key/value head (SDPA's kernel for a one-token query over a long cache runs in a few
  thread blocks);
- ``fused_norm``: the standard RMSNorm layers as one fused kernel each (``F.rms_norm``);
- ``fused_projections``: a decoder layer's query/key/value projections as one matrix product, its MLP's
  gate and up projections as one.

Used by the description families (``analyzers/vlm/families/hf.py``, ``fused_norm`` and ``fused_projections`` in ``qwen.py``; ``decode_attention``
only with ``FRAMEWORK_VLM_DECODE_ATTENTION=1``, an experiment) and
fusion's ``transformers`` backend (``framework/llm/transformers_backend.py``). Nothing here imports torch at module level.
"""

"""What this CPU computes natively (asked once per process; torch is imported only when asked)."""

from __future__ import annotations

import functools


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (oneDNN with AVX512-BF16 or AMX), so bf16 autocast pays."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False

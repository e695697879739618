"""Process-wide setup (offline hub, thread count, device) and resource measurements."""

from __future__ import annotations

import os
import resource
import sys


def configure_environment() -> None:
    """Never reach a model hub or telemetry endpoint; must run before transformers/trl are imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # OpenMP threads that spin while waiting collapse throughput ~25x when another process shares the cores
    # (two trainers on 2 cores: 170 vs 4,400 tokens/s each); sleeping costs ~20% on an idle machine.
    # Set OMP_WAIT_POLICY=ACTIVE for a dedicated machine.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    # The datasets cache would otherwise be written under $HOME and shared between runs.
    os.environ.setdefault("HF_DATASETS_CACHE", os.path.join(os.environ.get("TMPDIR", "/tmp"), "supertiny-datasets"))


def set_threads(num_threads: int | None) -> int:
    import torch

    count = num_threads if num_threads else min(os.cpu_count() or 1, 8)
    torch.set_num_threads(count)
    return count


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def peak_memory() -> dict[str, object]:
    """Peak memory of this process: CUDA allocator peak on GPU, resident set size otherwise."""
    import torch

    if torch.cuda.is_available():
        return {"peak_memory_bytes": int(torch.cuda.max_memory_allocated()), "peak_memory_kind": "cuda_allocated"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return {"peak_memory_bytes": int(rss * scale), "peak_memory_kind": "rss"}

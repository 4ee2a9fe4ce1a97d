"""freqtag on Ray: the shards of one analysis as Ray tasks, merged into one Analysis.

    import ray, freqtag.ray
    ray.init()                                   # or ray.init(address="auto") on a cluster
    a = freqtag.ray.analyze("resnet32", n_images=1000, seed=0, shards=8)

Each task runs :func:`freqtag.analyze_shard` (one ONNX Runtime session per task, with
as many threads as the task has CPUs) and writes its partial run under ``parts_dir``,
which every worker must be able to write and the driver to read (a shared file
system on a cluster; a temporary folder on one machine). The driver then merges them
(:func:`freqtag.merge`): the result equals a single-process run on the same images
(per-image arrays identical; mean spectra up to floating-point summation order).
Progress (shards done, ETA) goes to stderr unless ``progress=False``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Optional

from . import Analysis, FreqtagError, analyze_shard, merge

__all__ = ["analyze"]


def analyze(
    model: Any = "resnet32",
    images: Any = None,
    *,
    shards: int,
    num_cpus: int = 1,
    parts_dir: Optional[str] = None,
    out: Optional[str] = None,
    progress: bool = True,
    **options: Any,
) -> Analysis:
    """Runs :func:`freqtag.analyze` as ``shards`` Ray tasks of ``num_cpus`` CPUs each
    and merges them. ``model`` must be a pretrained name or a path every worker can
    read; ``images`` as in :func:`freqtag.analyze` (a numpy array is put in Ray's
    object store once). Other keyword arguments are :func:`freqtag.analyze`'s."""
    try:
        import ray
    except ImportError:
        raise FreqtagError("freqtag.ray needs Ray: pip install 'ray[default]'") from None
    if not isinstance(shards, int) or shards < 1:
        raise FreqtagError(f"invalid shards: a positive number of tasks (got {shards!r})")
    if not isinstance(model, (str, os.PathLike)):
        raise FreqtagError("invalid model: freqtag.ray needs a pretrained name or a path every worker can read")
    if not ray.is_initialized():
        ray.init()
    tmp = None
    if parts_dir is None:
        import tempfile

        tmp = tempfile.TemporaryDirectory(prefix="freqtag-parts-")
        parts_dir = tmp.name
    os.makedirs(parts_dir, exist_ok=True)
    images_ref = ray.put(images)

    @ray.remote(num_cpus=num_cpus)
    def run_shard(i: int, imgs: Any) -> str:
        return analyze_shard(
            os.fspath(model),
            imgs,
            shard=(i, shards),
            out=os.path.join(parts_dir, f"shard-{i:05d}"),
            threads=num_cpus,
            progress=False,
            **options,
        )

    start = time.monotonic()
    pending = [run_shard.remote(i, images_ref) for i in range(shards)]
    parts = []
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        parts.extend(ray.get(done))
        if progress:
            k = len(parts)
            el = time.monotonic() - start
            eta = el / k * (shards - k)
            print(f"\rfreqtag.ray: {k}/{shards} shards, {el:.0f} s, ETA {eta:.0f} s", end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    try:
        return merge(parts, out)
    finally:
        if tmp is not None:
            tmp.cleanup()

"""flickertag on Ray: the shards of one analysis as Ray tasks, merged into one Analysis.

    import ray, flickertag.ray
    ray.init()                                   # or ray.init(address="auto") on a cluster
    a = flickertag.ray.analyze("resnet32", n_images=1000, seed=0, shards=8)

Each task runs :func:`flickertag.analyze_shard` (one ONNX Runtime session per task, with
as many threads as the task has CPUs) and writes its partial run under ``parts_dir``,
which every worker must be able to write and the driver to read (a shared file
system on a cluster; a temporary folder on one machine). The driver then merges them
(:func:`flickertag.merge`): the result equals a single-process run on the same images
(per-image arrays identical; mean spectra up to floating-point summation order).
Progress (shards done, ETA) goes to stderr unless ``progress=False``: one line per
shard, so a log file or SLURM output stays readable.

Before any task starts, the driver checks what the run needs (the model loads, the
images are found, the options hold: the same checks as :func:`flickertag.analyze`), so a
mistake is one :class:`~flickertag.FlickertagError`, not one ``RayTaskError`` per task.
The data folder (``data=``, else ``FLICKERTAG_DATA`` as the driver sees it, also when set
after ``ray.init()``) goes to the workers in the tasks' runtime environment.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any, Optional

from . import Analysis, FlickertagError, _flickertag, _prepare, analyze_shard, merge

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
    """Runs :func:`flickertag.analyze` as ``shards`` Ray tasks of ``num_cpus`` CPUs each
    and merges them. ``model`` must be a pretrained name or a path every worker can
    read; ``images`` as in :func:`flickertag.analyze` (a numpy array is put in Ray's
    object store once). Other keyword arguments are :func:`flickertag.analyze`'s."""
    try:
        import ray
    except ImportError:
        raise FlickertagError("flickertag.ray needs Ray: pip install 'flickertag[ray]'") from None
    if not isinstance(shards, int) or shards < 1:
        raise FlickertagError(f"invalid shards: a positive number of tasks (got {shards!r})")
    if not isinstance(model, (str, os.PathLike)):
        raise FlickertagError("invalid model: flickertag.ray needs a pretrained name or a path every worker can read")
    # Everything a task would check, checked once here (the model, the images, the
    # options, the data folder), before any task is launched.
    with tempfile.TemporaryDirectory(prefix="flickertag-check-") as t:
        spec, opts, selection, img, data = _prepare(model, images, t, **options)
        try:
            checked = json.loads(
                _flickertag.check(spec, json.dumps(opts), json.dumps(selection), data=data, **img)
            )
        except TypeError as e:  # a value JSON cannot hold
            raise FlickertagError(f"invalid options: {e}") from None
    env_vars = {}
    if checked["data"] is not None:
        env_vars["FLICKERTAG_DATA"] = os.path.abspath(checked["data"])
    if not ray.is_initialized():
        ray.init()
    tmp = None
    if parts_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="flickertag-parts-")
        parts_dir = tmp.name
    os.makedirs(parts_dir, exist_ok=True)
    images_ref = ray.put(images)

    @ray.remote(num_cpus=num_cpus, runtime_env={"env_vars": env_vars})
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
            print(f"flickertag.ray: {k}/{shards} shards, {el:.0f} s elapsed, ETA {eta:.0f} s", file=sys.stderr, flush=True)
    try:
        return merge(parts, out)
    finally:
        if tmp is not None:
            tmp.cleanup()

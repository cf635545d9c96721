"""The cluster of a basin run: worker processes set up for torch, and the model shipped to
them once as a worker plugin carrying the checkpoint's bytes (each worker writes it to its local
directory and registers it under a content-hash name, which is all the task graphs mention).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
from distributed.diagnostics.plugin import WorkerPlugin

from floodxr.writers import atomic

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["WORKER_ENVIRON", "ship_model", "start_cluster"]

#: Environment of LocalCluster worker processes. The nanny's default ``MALLOC_TRIM_THRESHOLD_``
#: (64 KiB) made torch 2x slower (measured, see docs/basin.md); one OpenMP thread per worker
#: thread avoids oversubscribing the cores.
WORKER_ENVIRON = {
    "MALLOC_TRIM_THRESHOLD_": str(2**28),
    "MALLOC_MMAP_THRESHOLD_": str(2**28),
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

#: glibc reads these when a process starts: the nanny must set them before spawning a worker
_PRE_SPAWN = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")


def start_cluster(
    workers: int | None = None,
    *,
    threads_per_worker: int = 1,
    environ: Mapping[str, str] | None = WORKER_ENVIRON,
) -> Client:
    """A LocalCluster of worker processes set up for torch (``environ``: :data:`WORKER_ENVIRON`;
    None keeps distributed's defaults).

    The caller closes it (``client.close(); client.cluster.close()``). Scripts that start one
    need an ``if __name__ == "__main__":`` guard: worker processes are spawned.

    Examples
    --------
    >>> client = start_cluster(1)
    >>> client.run(lambda: __import__("os").environ["OMP_NUM_THREADS"]).popitem()[1]
    '1'
    >>> client.close(); client.cluster.close()
    """
    from distributed import Client, LocalCluster

    n = workers or max(1, (os.cpu_count() or 1) // threads_per_worker)
    environ = dict(environ or {})
    pre_spawn = {k: v for k, v in environ.items() if k in _PRE_SPAWN}
    after_spawn = {k: v for k, v in environ.items() if k not in _PRE_SPAWN}
    settings = {"distributed.nanny.pre-spawn-environ": pre_spawn} if pre_spawn else {}
    ours = dict(os.environ)
    with dask.config.set(settings):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",
            env=after_spawn,
        )
    # the nanny writes its pre-spawn variables into this process's environment and leaves them
    # there (distributed 2026.8): they would reach every later subprocess of the caller
    os.environ.clear()
    os.environ.update(ours)
    return Client(cluster)


class _ShipModel(WorkerPlugin):
    """A worker plugin carrying one checkpoint: written to each worker's local directory and
    registered there under ``name``, once per worker process (new and restarted ones too)."""

    def __init__(self, name: str, weights: bytes, config: bytes) -> None:
        self.name = name
        self.weights = weights
        self.config = config

    def setup(self, worker: Any) -> None:
        from floodxr import models

        folder = Path(worker.local_directory) / "floodxr-models"
        folder.mkdir(parents=True, exist_ok=True)
        for suffix, data in ((".json", self.config), (".safetensors", self.weights)):
            # a worker restarted in the same folder writes the same bytes again
            with atomic(folder / f"{self.name}{suffix}", overwrite=True) as partial:
                partial.write_bytes(data)
        models.register(self.name, folder / f"{self.name}.safetensors")


def ship_model(client: Client, weights: Path, digest: str) -> str:
    """Send the checkpoint to every worker once; returns the name the graphs use."""
    from floodxr import models
    from floodxr.models import checkpoint

    name = f"floodxr-{digest[:16]}"
    models.register(name, weights)
    config = checkpoint.paths(weights)[1]
    client.register_plugin(_ShipModel(name, weights.read_bytes(), config.read_bytes()), name=name)
    return name

"""The statistics extension (`GET /v2/models[/{name}[/versions/{v}]]/stats`), in Triton's format.

Per served version:
- `inference_count` (images) and `execution_count` (forward passes): every pass of that version,
  whichever protocol's requests it served, as /metrics counts them (`ae_batch_images`);
- `inference_stats.success` and `.fail`: this protocol's inference requests answered by that
  version, how many and their total time from the request's arrival to its reply, in
  nanoseconds; `last_inference` the end of the latest of them (ms since the epoch). The REST
  API's requests are in /metrics (`ae_requests_total`, `ae_request_seconds`), by model.
The queue and compute breakdowns are not measured: zeros. Counts start with the process.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from service.core import ServedModel
from service.metrics import Metrics

NOT_MEASURED = ("queue", "compute_input", "compute_infer", "compute_output", "cache_hit", "cache_miss")


SUCCESS, SUCCESS_NS, FAIL, FAIL_NS, LAST = range(5)  # a version's counts, in a list


class RequestStats:
    """This protocol's inference requests per model version: counted by the infer route, read by the stats route."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], list[int]] = {}
        self._epoch_ns = time.time_ns() - time.monotonic_ns()  # monotonic -> wall clock, for last_inference

    def record(self, served: ServedModel, ok: bool, started_ns: int) -> None:
        """A request that arrived at `started_ns` (time.monotonic_ns) ended now, answered or not."""
        now = time.monotonic_ns()
        key = (served.name, served.version)
        counts = self._counts.get(key) or self._counts.setdefault(key, [0] * 5)
        slot = SUCCESS if ok else FAIL
        counts[slot] += 1
        counts[slot + 1] += now - started_ns
        counts[LAST] = now

    def model_stats(self, versions: Iterable[ServedModel], metrics: Metrics) -> dict[str, Any]:
        passes = _passes(metrics)
        entries = []
        for served in versions:
            counts = self._counts.get((served.name, served.version), [0] * 5)
            executions, images = passes.get((served.name, str(served.version)), (0, 0))
            entries.append({
                "name": served.name,
                "version": str(served.version),
                "last_inference": (self._epoch_ns + counts[LAST]) // 1_000_000 if counts[LAST] else 0,
                "inference_count": images,
                "execution_count": executions,
                "inference_stats": {"success": _stat(counts[SUCCESS], counts[SUCCESS_NS]),
                                    "fail": _stat(counts[FAIL], counts[FAIL_NS]),
                                    **{key: _stat(0, 0) for key in NOT_MEASURED}},
                "batch_stats": [],
                "memory_usage": [],
            })  # fmt: skip
        return {"model_stats": entries}


def _stat(count: int, ns: int) -> dict[str, int]:
    return {"count": count, "ns": ns}


def _passes(metrics: Metrics) -> dict[tuple[str, str], tuple[int, int]]:
    """(model, version) -> (forward passes, images in them), from the batch-size histogram."""
    counts: dict[tuple[str, str], list[int]] = {}
    for family in metrics.batch_images.collect():
        for sample in family.samples:
            slot = {"ae_batch_images_count": 0, "ae_batch_images_sum": 1}.get(sample.name)
            if slot is not None:
                key = (sample.labels["model"], sample.labels["version"])
                counts.setdefault(key, [0, 0])[slot] = int(sample.value)
    return {key: (value[0], value[1]) for key, value in counts.items()}

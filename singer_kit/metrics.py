"""The counts a Singer program reports, as singer-sdk METRIC points any orchestrator can read.

A target reports each commit with two ``record_count`` counters per stream, tagged with the
``status`` of the records: ``loaded`` (now in the destination) and ``rejected`` (refused by
it, kept with a reason, never lost). An off-the-shelf singer-sdk target reports the same
metric without a ``status`` (records it received). singer-sdk's metrics logger writes them
either as ``METRIC: {json}`` text or, with structured logging, as a JSON log line carrying
``metric_info``; ``read_point`` takes both. The format: docs/kit/protocol.md.
"""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass

from singer_sdk import metrics

LOADED = "loaded"
REJECTED = "rejected"
_TEXT = re.compile(r"METRIC: (\{.*\})\s*$")


def log_commit(stream: str, loaded: int, rejected: int) -> None:
    """Report one commit of ``stream``: how many records it loaded and rejected.

    Both counts every time, zeros included, so a reader sees each commit of each stream.
    """
    logger = metrics.get_metrics_logger()
    for status, value in ((LOADED, loaded), (REJECTED, rejected)):
        tags = {metrics.Tag.STREAM.value: stream, metrics.Tag.STATUS.value: status}
        metrics.log(logger, metrics.Point("counter", metrics.Metric.RECORD_COUNT, value, tags))


@dataclass(frozen=True)
class RecordCount:
    """One ``record_count`` point: ``status`` is LOADED/REJECTED for a commit, else None."""

    stream: str
    value: int
    status: str | None


def read_point(line: str) -> dict[str, t.Any] | None:
    """The metric point of a log line (either of singer-sdk's two forms), else None."""
    text = _TEXT.search(line)
    try:
        if text:
            point = json.loads(text.group(1))
        elif line.startswith("{") and '"metric_info"' in line:
            point = json.loads(line).get("metric_info")
        else:
            return None
    except (ValueError, AttributeError):
        return None
    return point if isinstance(point, dict) else None


def record_count(point: t.Mapping[str, t.Any]) -> RecordCount | None:
    """The point as a RecordCount, or None for any other metric (or a malformed one)."""
    value = point.get("value")
    tags = point.get("tags")
    if point.get("metric") != metrics.Metric.RECORD_COUNT.value or not isinstance(tags, dict):
        return None
    stream = tags.get(metrics.Tag.STREAM.value)
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not stream
        or not isinstance(stream, str)
    ):
        return None
    status = tags.get(metrics.Tag.STATUS.value)
    return RecordCount(stream, value, status if status in (LOADED, REJECTED) else None)

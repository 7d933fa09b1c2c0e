"""The pass over a taxonomy run's records, on every core: a big run is cut into spans of its
labeled files (at line ends), each span is counted by a worker process into a
:class:`~sftlabel.reports._aggregate.TaxonomySummary`, and the summaries are merged in record
order, so the result is the same as one process reading the files in order (the same counts,
the same examples; sums of floats may differ in their last digits).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from typing import Any, TypeVar

from sftlabel.reports._aggregate import Example, TaxonomySummary
from sftlabel.reports._runs import RunData, Span, _records, read_span
from sftlabel.taxonomy import Taxonomy

SPAN_BYTES = 32 * 1024 * 1024
"""A worker's share of a file at a time (about 20,000 samples)."""
PARALLEL_BYTES = 128 * 1024 * 1024
"""Runs smaller than this are read in this process."""

T = TypeVar("T")


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def summarize_taxonomy(
    run: RunData, taxonomy: Taxonomy, threshold: float, *, jobs: int | None = None
) -> dict[str, TaxonomySummary]:
    """One pass over a taxonomy run: a summary per part (``""`` is the root of a single-file
    run), on ``jobs`` processes (default: every core; 1 reads in this process).

    Use :func:`~sftlabel.reports._aggregate.merge_parts` for the whole run.
    """
    dims = taxonomy.dimensions()
    parts: dict[str, TaxonomySummary] = {}
    _combine(parts, map_spans(run, summarize_span, dims, threshold, jobs=jobs))
    for part, path in run.failure_files:
        for failure in _records(path):
            if isinstance(failure, dict):
                _summary(parts, part, dims, threshold).add_failure(part, failure)
    for found in parts.values():
        found.flush()
    return parts


def map_spans(
    run: RunData, work: Callable[..., T], *args: Any, jobs: int | None = None
) -> Iterator[tuple[Span, T]]:
    """``(span, work(span, *args))`` for every span of a taxonomy run's labeled files, in
    record order: on ``jobs`` forked processes (default: every core) for a run of at least
    ``PARALLEL_BYTES``, else in this process. ``work`` and its result must pickle."""
    run.span_records(Span("", run.path, 0, 0))  # a soft-label run is refused here
    spans = run.spans(SPAN_BYTES)
    workers = min(default_jobs() if jobs is None else max(jobs, 1), len(spans))
    size = sum(path.stat().st_size for _, path in run.files)
    if workers > 1 and size >= PARALLEL_BYTES and _can_fork():
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            yield from zip(spans, pool.map(work, spans, *map(repeat, args)), strict=True)
    else:
        for span in spans:
            yield span, work(span, *args)


def _can_fork() -> bool:
    """Workers are forked (they start at once and need no ``if __name__ == "__main__"`` in the
    caller's script), which is safe only on Linux and in a process without other threads;
    elsewhere the run is read in this process."""
    return sys.platform == "linux" and threading.active_count() == 1


def summarize_span(span: Span, dims: list[str], threshold: float) -> TaxonomySummary:
    """The summary of one span (in a worker process)."""
    summary = TaxonomySummary(dimensions=dims, threshold=threshold)
    for record in read_span(span):
        summary.add_record(record)
    summary.flush()
    return summary


def _combine(
    parts: dict[str, TaxonomySummary], counted: Iterable[tuple[Span, TaxonomySummary]]
) -> None:
    """Merge span summaries in record order, numbering their examples in the whole run."""
    offset = 0
    for span, summary in counted:
        for example in _examples(summary):
            example.position += offset
            if not example.id:  # a record without an id is known by its place in the run
                example.id = str(example.position)
        offset += summary.samples
        found = parts.get(span.part)
        if found is None:
            parts[span.part] = summary
        else:
            found.merge(summary)


def _examples(summary: TaxonomySummary) -> Iterator[Example]:
    seen: set[int] = set()
    for example in [*summary.first, *(e for _, _, e in summary.least_confident)]:
        if id(example) not in seen:
            seen.add(id(example))
            yield example


def _summary(
    parts: dict[str, TaxonomySummary], part: str, dims: list[str], threshold: float
) -> TaxonomySummary:
    found = parts.get(part)
    if found is None:
        found = parts[part] = TaxonomySummary(dimensions=dims, threshold=threshold)
    return found

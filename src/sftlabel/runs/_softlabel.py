"""The soft-label task on the engine: one item is one user turn; a classification (and an
optional rationale) per turn, written into the ``LABELED_`` folder (:class:`SoftOutput`).

A turn whose rendering (what the strategy shows the model) equals an earlier turn's gets that
turn's label with ``monitor.duplicate_of`` and no request (the engine's dedup)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from sftlabel._version import __version__
from sftlabel.formats import Reader
from sftlabel.llm import LabelTokens
from sftlabel.model import Problem, TurnLabel
from sftlabel.runs._engine import ItemFailed, Written
from sftlabel.runs._manifest import RunManifest
from sftlabel.runs._softstore import SoftOutput, summarize
from sftlabel.softlabel import SoftLabeler, Turn, TurnFailed, iter_turns

SHARED = (
    "hard_label",
    "soft_label",
    "rationale",
    "p0",
    "p1",
    "soft_label_range",
    "token",
    "method",
    "censored",
)
"""What a duplicate turn copies of its original's record."""
SHARED_MONITOR = ("resolve", "rationale_error")


def turn_stream(
    inputs: list[Path],
    limit: int | None = None,
    on_problem: Callable[[Problem], None] | None = None,
) -> Iterator[tuple[int, Turn]]:
    """``(index, turn)`` in input order (deterministic, so a resume sees the same turns)."""
    index = 0
    for item in iter_turns(Reader().read([str(p) for p in inputs])):
        if isinstance(item, Problem):
            if on_problem is not None:
                on_problem(item)
            continue
        if limit is not None and index >= limit:
            return
        yield index, item
        index += 1


class SoftLabelTask:
    """P(does not need reasoning) for every user turn of the inputs."""

    kind = "softlabel"
    noun = "turn"

    def __init__(
        self,
        labeler: SoftLabeler,
        inputs: list[Path],
        output: SoftOutput,
        *,
        limit: int | None,
        dedup: bool = True,
    ) -> None:
        self.labeler = labeler
        self.inputs = inputs
        self.output = output
        self.limit = limit
        self.dedup = dedup

    def items(self, on_problem: Callable[[Problem], None]) -> Iterator[tuple[int, Turn]]:
        return turn_stream(self.inputs, self.limit, on_problem)

    def key(self, item: tuple[int, Turn]) -> Hashable:
        return item[1].key

    def shard_key(self, item: tuple[int, Turn]) -> Hashable:
        """What decides a turn's shard (``--engine ray``): with dedup, its rendering, so that
        equal renderings meet in one shard and its first turn in input order is the original
        there as in a local run; without, its conversation."""
        return self.content(item) if self.dedup else item[1].conversation_id

    def content(self, item: tuple[int, Turn]) -> str:
        """What the model sees of a turn: the strategy's rendering (context turns included)."""
        return self.labeler.strategy.render(item[1], self.labeler.options)

    def duplicate(self, item: tuple[int, Turn], original: Any, share: Any) -> Written:
        """The label of ``original`` (an earlier turn with the same rendering), no request."""
        index, turn = item
        conversation, message, number = original
        monitor: dict[str, Any] = {
            "duplicate_of": {
                "conversationId": conversation,
                "messageId": message,
                "turnIndex": number,
            },
            "llm_calls": 0,
            **share.get("monitor", {}),
        }
        fields = {k: v for k, v in share.items() if k in SHARED}
        record = TurnLabel(
            conversationId=turn.conversation_id,
            messageId=turn.message_id,
            split=turn.split,
            bucket=turn.bucket,
            turnIndex=turn.turn_index,
            strategy=self.labeler.strategy.name,
            model=self.labeler.client.config.model,
            index=index,
            monitor=monitor,
            **fields,
        )
        return Written(
            [(self._file(turn), record)], counters={"censored": int(bool(record.censored))}
        )

    def _file(self, turn: Turn) -> str:
        return self.output.relative(turn.location.path if turn.location else None)

    async def process(self, item: tuple[int, Turn]) -> Written:
        index, turn = item
        try:
            record = await self.labeler.label(turn, index=index)
        except TurnFailed as exc:
            cause = getattr(exc, "cause", "endpoint")
            raise ItemFailed(
                exc.reason,
                str(exc),
                endpoint_fault=exc.reason == "rejected" and cause != "content",
                monitor=exc.monitor,
            ) from None
        share: dict[str, Any] = {
            k: value for k in SHARED if (value := getattr(record, k)) is not msgspec.UNSET
        }
        share["monitor"] = {k: record.monitor[k] for k in SHARED_MONITOR if k in record.monitor}
        return Written(
            [(self._file(turn), record)],
            counters={"censored": int(bool(record.censored))},
            share=share,
        )

    def failure(self, item: tuple[int, Turn], exc: ItemFailed) -> Written:
        index, turn = item
        record = TurnLabel(
            conversationId=turn.conversation_id,
            messageId=turn.message_id,
            split=turn.split,
            bucket=turn.bucket,
            turnIndex=turn.turn_index,
            strategy=self.labeler.strategy.name,
            model=self.labeler.client.config.model,
            error=exc.message,
            reason=exc.reason,
            index=index,
            monitor=exc.monitor,
        )
        return Written([(self._file(turn), record)])


def build_metadata(
    manifest: RunManifest, output: SoftOutput, tokens: LabelTokens | None
) -> dict[str, Any]:
    """``labeling_metadata.json``: a rendered view of the run's manifest (model, options,
    token ids, counts over the whole output, sessions)."""
    sessions = [
        {
            "started": s.started,
            "finished": s.finished,
            "status": s.status,
            "message": s.message,
            "elapsed_seconds": s.elapsed,
            "turns_labeled": s.labeled,
            "turns_failed": s.failed,
            "turns_retried": s.retried,
            "requests": s.requests,
            "prompt_tokens": s.prompt_tokens,
            "cached_tokens": s.cached_tokens,
            "cache_hits": s.cache_hits,
            "retries": s.retries,
            "rate_limited_429": s.rate_limited,
            "cost_usd": round(s.cost, 6),
        }
        for s in manifest.sessions
    ]
    options = dict(manifest.options)
    model = options.pop("model", "")
    strategy = options.pop("strategy", "")
    options["limit"] = options.get("limit")
    options["concurrency"] = manifest.rate.concurrency
    ids = tokens.ids if tokens else manifest.options.get("label_token_ids")
    return {
        "sftlabel_version": __version__,
        "task": "reasoning soft labels: 0 = requires reasoning, 1 = does not",
        "model": model,
        "endpoint": manifest.endpoint_url().split("?", 1)[0],
        "inputs": manifest.given_inputs or manifest.inputs,
        "strategy": strategy,
        "options": options,
        "label_token_ids": ids,
        "label_token_source": tokens.source if tokens else None,
        "label_token_verified": tokens.verified if tokens else None,
        "counts": summarize(output),
        "cost_usd": round(manifest.spent, 6),
        "elapsed_seconds": round(sum(s.elapsed for s in manifest.sessions), 3),
        "sessions": sessions,
    }

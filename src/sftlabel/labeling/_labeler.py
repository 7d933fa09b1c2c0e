"""Labeling one sample: two calls, validation, arbitration of low-confidence dimensions."""

from __future__ import annotations

import time
from typing import Any, Literal

import msgspec

from sftlabel.errors import SftlabelError
from sftlabel.labeling._parse import ReplyFormatError, extract_json
from sftlabel.labeling._prompts import ARBITRATION, build_messages
from sftlabel.labeling._signals import Signals, compute_signals, signal_warnings
from sftlabel.labeling._validate import Unmapped, Validated, validate
from sftlabel.llm import ChatResult, LLMClient, RequestRejectedError, RetriesExhaustedError
from sftlabel.model import Sample
from sftlabel.taxonomy import Taxonomy

JsonMode = Literal["auto", "on", "off"]
JSON_FORMAT = {"type": "json_object"}


class LabelingFailed(SftlabelError):
    """The sample could not be labeled (recorded in failures.jsonl).

    ``reason`` is a short kind for counting: ``no-json`` (no parseable answer after the repair
    turns), ``rejected`` (the server refused the request: 400 ...), ``retries-exhausted``
    (5xx/timeouts/resets of this request's own persisted while others got answers).
    ``cause`` (rejections only): ``content`` when the server said the content is the problem
    (the sample's own failure), ``endpoint`` otherwise (unknown model, unsupported parameter ...:
    every sample will fail the same way). Rate limits and outages never fail a sample: the
    client waits, or raises :class:`~sftlabel.llm.EndpointUnavailableError` for the run.
    """

    def __init__(self, message: str, *, reason: str, cause: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.cause = cause


class CallRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One request made for a sample, for the monitor."""

    call: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float | None = None
    latency: float = 0.0
    attempts: int = 0
    rate_limited: int = 0
    from_cache: bool = False
    shared: bool = False
    """The answer of an identical request in flight at the same time (paid once)."""
    format_error: str | None = None


class ArbitrationRecord(msgspec.Struct, kw_only=True):
    dimension: str
    first: str | list[str] | None
    first_confidence: float
    second: str | list[str] | None
    second_confidence: float
    chosen: Literal["first", "second"]


class LabelResult(msgspec.Struct, kw_only=True):
    """``labels`` and ``labeling_monitor`` in the shape of the baseline runs."""

    labels: dict[str, Any]
    monitor: dict[str, Any]


class Labeler:
    """Labels samples through an :class:`LLMClient`; safe to use from many tasks at once."""

    def __init__(
        self,
        client: LLMClient,
        taxonomy: Taxonomy,
        *,
        confidence_threshold: float = 0.65,
        arbitration: bool = True,
        arbitration_client: LLMClient | None = None,
        json_mode: JsonMode = "auto",
        format_retries: int = 2,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        arbitration_temperature: float = 0.3,
    ) -> None:
        self.client = client
        self.taxonomy = taxonomy
        self.threshold = confidence_threshold
        self.arbitration = arbitration
        self.arbitration_client = arbitration_client or client
        self.json_mode = json_mode
        self._json = json_mode != "off"
        self.format_retries = format_retries
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.arbitration_temperature = arbitration_temperature

    async def label(self, sample: Sample) -> LabelResult:
        """Label one sample. Raises :class:`LabelingFailed` (the sample fails, the run goes on)
        or :class:`~sftlabel.llm.AuthenticationError` (the run stops)."""
        started = time.monotonic()
        records: list[CallRecord] = []
        signals = compute_signals(sample, self.taxonomy)
        first = await self._ask(self.client, 1, sample, records, signals=signals)
        second = await self._ask(
            self.client, 2, sample, records, previous=first.values, signals=signals
        )
        merged = Validated(
            values={**first.values, **second.values},
            confidence={**first.confidence, **second.confidence},
            unmapped=[*first.unmapped, *second.unmapped],
            issues=[*first.issues, *second.issues],
        )
        arbitrations = (
            await self._arbitrate(sample, merged, records, signals) if self.arbitration else []
        )
        return self._result(merged, arbitrations, records, started, sample=sample, signals=signals)

    @property
    def json_mode_active(self) -> bool:
        """False once the endpoint refused ``response_format`` (JSON mode ``auto``) or when it
        is ``off``."""
        return self._json

    async def ask(self, call: int, sample: Sample) -> tuple[Validated, list[CallRecord]]:
        """One taxonomy call alone (``sftlabel test`` checks an endpoint with it)."""
        records: list[CallRecord] = []
        validated = await self._ask(self.client, call, sample, records)
        return validated, records

    async def rearbitrate(self, sample: Sample, labels: dict[str, Any]) -> LabelResult | None:
        """Arbitrate the low-confidence dimensions of existing ``labels`` (from a finished run);
        None when no dimension is below the threshold."""
        dims = self.taxonomy.dimensions()
        scores = labels.get("confidence") or {}
        current = Validated(
            values={d: labels.get(d) for d in dims},
            confidence={d: float(scores.get(d, 0.0)) for d in dims},
            unmapped=[
                Unmapped(dimension=str(u.get("dimension", "")), value=str(u.get("value", "")))
                if isinstance(u, dict)
                else Unmapped(dimension="", value=str(u))
                for u in labels.get("unmapped", [])
            ],
            issues=[],
        )
        if not any(current.confidence[d] < self.threshold for d in dims):
            return None
        started = time.monotonic()
        records: list[CallRecord] = []
        signals = compute_signals(sample, self.taxonomy)
        arbitrations = await self._arbitrate(sample, current, records, signals)
        return self._result(current, arbitrations, records, started, sample=sample, signals=signals)

    async def _arbitrate(
        self, sample: Sample, current: Validated, records: list[CallRecord], signals: Signals
    ) -> list[ArbitrationRecord]:
        """Ask the dimensions below the threshold again; keep the more confident answer
        (updates ``current`` in place)."""
        values, confidence = current.values, current.confidence
        low = [d for d in self.taxonomy.dimensions() if confidence.get(d, 0.0) < self.threshold]
        if not low:
            return []
        again = await self._ask(
            self.arbitration_client,
            ARBITRATION,
            sample,
            records,
            previous=values,
            dimensions=tuple(low),
            temperature=self.arbitration_temperature,
            signals=signals,
        )
        arbitrations: list[ArbitrationRecord] = []
        for dim in low:
            better = again.confidence[dim] > confidence[dim]
            arbitrations.append(
                ArbitrationRecord(
                    dimension=dim,
                    first=values[dim],
                    first_confidence=confidence[dim],
                    second=again.values[dim],
                    second_confidence=again.confidence[dim],
                    chosen="second" if better else "first",
                )
            )
            if better:
                values[dim] = again.values[dim]
                confidence[dim] = again.confidence[dim]
        current.issues.extend(
            f"arbitration: {issue}" for issue in again.issues if issue.split(":")[0] in low
        )
        current.unmapped.extend(
            u for u in again.unmapped if u not in current.unmapped and u.dimension in low
        )
        return arbitrations

    def _result(
        self,
        current: Validated,
        arbitrations: list[ArbitrationRecord],
        records: list[CallRecord],
        started: float,
        *,
        sample: Sample,
        signals: Signals,
    ) -> LabelResult:
        dims = self.taxonomy.dimensions()
        labels: dict[str, Any] = {d: current.values[d] for d in dims}
        labels["confidence"] = {d: round(current.confidence[d], 4) for d in dims}
        labels["unmapped"] = [msgspec.structs.asdict(u) for u in _dedupe(current.unmapped)]
        costs = [r.cost for r in records]
        monitor: dict[str, Any] = {
            "llm_calls": len(records),
            "arbitrated": bool(arbitrations),
            "validation_issues": current.issues,
            "consistency_warnings": [
                *self.taxonomy.consistency_warnings(current.values),
                *signal_warnings(self.taxonomy, sample, signals, current.values),
            ],
            "arbitration": [msgspec.structs.asdict(a) for a in arbitrations],
            "prompt_tokens": sum(r.prompt_tokens for r in records),
            "completion_tokens": sum(r.completion_tokens for r in records),
            "cached_tokens": sum(r.cached_tokens for r in records),
            "cost": None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
            "from_cache": all(r.from_cache for r in records),
            "elapsed": round(time.monotonic() - started, 4),
            "calls": [msgspec.to_builtins(r) for r in records],
            "signals": signals.to_builtins(),
        }
        return LabelResult(labels=labels, monitor=monitor)

    async def _ask(
        self,
        client: LLMClient,
        call: int,
        sample: Sample,
        records: list[CallRecord],
        *,
        previous: dict[str, Any] | None = None,
        dimensions: tuple[str, ...] | None = None,
        temperature: float | None = None,
        signals: Signals | None = None,
    ) -> Validated:
        dims = dimensions or tuple(self.taxonomy.dimensions(call))
        messages = build_messages(
            self.taxonomy, call, sample, dimensions=dims, previous=previous, signals=signals
        )
        name = {1: "call1", 2: "call2"}.get(call, "arbitration")
        last_error = ""
        for _ in range(self.format_retries + 1):
            result = await self._chat(client, messages, temperature)
            record = _record(name, result)
            records.append(record)
            try:
                answer = extract_json(result.content)
            except ReplyFormatError as exc:
                last_error = str(exc)
                record.format_error = last_error
                messages = [
                    *messages,
                    {"role": "assistant", "content": result.content[:4000]},
                    {
                        "role": "user",
                        "content": f"That was not a valid answer ({last_error}). "
                        "Answer again with only the JSON object.",
                    },
                ]
                continue
            return validate(self.taxonomy, list(dims), answer)
        raise LabelingFailed(
            f"{name}: no JSON object after {self.format_retries + 1} replies: {last_error}",
            reason="no-json",
        )

    async def _chat(
        self, client: LLMClient, messages: list[dict[str, Any]], temperature: float | None
    ) -> ChatResult:
        params: dict[str, Any] = {
            "temperature": self.temperature if temperature is None else temperature,
            "max_tokens": self.max_tokens,
        }
        while True:
            if self._json:
                params["response_format"] = JSON_FORMAT
            else:
                params.pop("response_format", None)
            sent_json = "response_format" in params
            try:
                return await client.chat(client.request(messages, **params), accept=_usable)
            except RequestRejectedError as exc:
                # Decide on what *this* request carried: requests sent before another one turned
                # JSON mode off get the same refusal and must be asked again too.
                if sent_json and self.json_mode == "auto" and _json_mode_refused(exc):
                    self._json = False  # the endpoint does not do JSON mode: ask without it
                    continue
                raise LabelingFailed(
                    f"request rejected: {exc}", reason="rejected", cause=exc.cause
                ) from None
            except RetriesExhaustedError as exc:
                raise LabelingFailed(str(exc), reason="retries-exhausted") from None


def _usable(result: ChatResult) -> bool:
    """Whether an answer is worth caching: it holds a JSON object (a reply that does not is
    asked again in a repair turn, and must not come back from the cache on the next run)."""
    try:
        extract_json(result.content)
    except ReplyFormatError:
        return False
    return True


def _json_mode_refused(exc: RequestRejectedError) -> bool:
    text = str(exc).lower()
    return exc.status in (400, 422) and ("response_format" in text or "json" in text)


def _record(name: str, result: ChatResult) -> CallRecord:
    return CallRecord(
        call=name,
        model=result.model,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        cached_tokens=result.cached_tokens,
        cost=result.cost,
        latency=round(result.latency, 4),
        attempts=result.attempts,
        rate_limited=result.rate_limited,
        from_cache=result.from_cache,
        shared=result.shared,
    )


def _dedupe(items: list[Unmapped]) -> list[Unmapped]:
    seen: set[Unmapped] = set()
    kept: list[Unmapped] = []
    for item in items:
        if item not in seen:
            seen.add(item)
            kept.append(item)
    return kept

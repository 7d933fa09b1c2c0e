"""One soft label: a one-token "0"/"1" classification read from the first token's logprobs.

``soft_label = P("1") / (P("0") + P("1"))``. The same ``logit_bias`` is put on both label tokens,
so their ratio is the model's own whether a server reports logprobs before or after the bias.

Edge cases, each said in the record (``method``, ``censored``, ``soft_label_range``):

* a label token missing from ``top_logprobs`` (*censored*): its probability is at most what the
  top-k leave (the smallest listed probability, and 1 minus their sum). The soft label uses the
  middle of that range and records the range; ``--resolve-missing`` asks once more with a large
  equal bias on both label tokens, which lifts both into the top-k when the server reports
  logprobs after the bias (``method: resolved``);
* a first token that is not a label (a space, a quote, a thinking tag): the label tokens' entries
  in ``top_logprobs`` still give the soft label and the likelier one is the hard label
  (``method: first-token-not-label``); with neither in the top-k the turn fails (``no-label``);
* no logprobs at all, or a 400 that names them: the model cannot serve this job (reasoning models
  refuse logprobs) and :class:`LogprobsUnsupportedError` stops the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec

from sftlabel.llm import (
    ChatResult,
    LLMClient,
    LLMError,
    RequestRejectedError,
    RetriesExhaustedError,
)
from sftlabel.llm._tokens import LABELS, LabelTokens
from sftlabel.model import TurnLabel
from sftlabel.softlabel._prompts import classification_messages, rationale_messages
from sftlabel.softlabel._strategies import Strategy, StrategyOptions
from sftlabel.softlabel._turns import Turn

REASONING_MODEL_HINT = (
    "reasoning models (OpenAI o-series, gpt-5 at its default reasoning effort, DeepSeek-R1 ...) "
    "do not return logprobs; use a non-reasoning model for softlabel"
)


class LogprobsUnsupportedError(LLMError):
    """The model does not return logprobs: no turn can get a soft label. Stops the run."""

    exit_code = 3


class TurnFailed(Exception):
    """A turn that could not be labeled (it is written with ``error`` and ``reason``).

    ``cause`` (``rejected`` only): ``content`` or ``endpoint``, as in RequestRejectedError."""

    def __init__(
        self,
        reason: str,
        message: str,
        monitor: dict[str, Any] | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.monitor = monitor or {}
        self.cause = cause


@dataclass(frozen=True, kw_only=True)
class SoftLabelSettings:
    top_logprobs: int = 5
    logit_bias: float = 5.0
    temperature: float = 1.0
    rationales: bool = True
    rationale_max_tokens: int = 128
    rationale_temperature: float = 0.7
    resolve_missing: bool = False
    resolve_bias: float = 30.0
    """The equal bias of the ``--resolve-missing`` request (large enough to lift both label
    tokens above every other token)."""


class FirstToken(msgspec.Struct, kw_only=True):
    """The first generated token and the logprobs offered for that position."""

    token: str | None
    logprob: float | None
    top: dict[str, float]


class Reading(msgspec.Struct, kw_only=True):
    """Probabilities of the two labels read from one answer."""

    p0: float | None
    p1: float | None
    censored: list[str]
    soft: float
    soft_range: tuple[float, float] | None = None


def first_token(logprobs: Any) -> FirstToken | None:
    """The first position of a ``logprobs`` object, in the chat shape
    (``{"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}]}``) or the
    legacy completions shape (``{"tokens", "token_logprobs", "top_logprobs": [{token: lp}]}``).
    None when there are no logprobs."""
    if not isinstance(logprobs, dict):
        return None
    content = logprobs.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict):
        entry = content[0]
        top: dict[str, float] = {}
        for item in entry.get("top_logprobs") or []:
            if isinstance(item, dict) and isinstance(item.get("token"), str):
                logprob = _float(item.get("logprob"))
                if logprob is not None:
                    top.setdefault(item["token"], logprob)
        token = entry.get("token") if isinstance(entry.get("token"), str) else None
        logprob = _float(entry.get("logprob"))
        if token is not None and logprob is not None:
            top.setdefault(token, logprob)
        return FirstToken(token=token, logprob=logprob, top=top)
    tokens = logprobs.get("tokens")
    if isinstance(tokens, list) and tokens:
        values = logprobs.get("token_logprobs") or []
        tops = logprobs.get("top_logprobs") or []
        top = {}
        if tops and isinstance(tops[0], dict):
            for key, value in tops[0].items():
                number = _float(value)
                if isinstance(key, str) and number is not None:
                    top.setdefault(key, number)
        token = tokens[0] if isinstance(tokens[0], str) else None
        logprob = _float(values[0]) if values else None
        if token is not None and logprob is not None:
            top.setdefault(token, logprob)
        return FirstToken(token=token, logprob=logprob, top=top)
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) or number == -math.inf else None


def read_labels(first: FirstToken) -> Reading | None:
    """The two label probabilities of an answer (None when neither label is in the top-k)."""
    probs = {label: math.exp(first.top[label]) for label in LABELS if label in first.top}
    if not probs:
        return None
    if len(probs) == len(LABELS):
        p0, p1 = probs["0"], probs["1"]
        total = p0 + p1
        soft = p1 / total if total > 0 else 0.5
        return Reading(p0=p0, p1=p1, censored=[], soft=soft)
    ((seen, p_seen),) = probs.items()
    missing = "1" if seen == "0" else "0"
    listed = [math.exp(v) for v in first.top.values()]
    bound = max(0.0, min(*listed, 1.0 - sum(listed))) if listed else 0.0
    bound = min(bound, p_seen)  # absent from a top-k that lists the seen label
    estimate = bound / 2

    def soft_of(p_missing: float) -> float:
        p0, p1 = (p_seen, p_missing) if seen == "0" else (p_missing, p_seen)
        return p1 / (p0 + p1) if p0 + p1 > 0 else 0.5

    low, high = sorted((soft_of(0.0), soft_of(bound)))
    return Reading(
        p0=p_seen if seen == "0" else None,
        p1=p_seen if seen == "1" else None,
        censored=[missing],
        soft=soft_of(estimate),
        soft_range=(low, high),
    )


class SoftLabeler:
    """Soft-labels turns through a shared client (retries, rate limits, cache, usage)."""

    def __init__(
        self,
        client: LLMClient,
        tokens: LabelTokens,
        strategy: Strategy,
        *,
        options: StrategyOptions | None = None,
        settings: SoftLabelSettings | None = None,
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.strategy = strategy
        self.options = options or StrategyOptions()
        self.settings = settings or SoftLabelSettings()

    async def classify(self, text: str, *, bias: float | None = None) -> ChatResult:
        """One classification request (max_tokens=1, logprobs, top_logprobs, logit_bias)."""
        settings = self.settings
        value = settings.logit_bias if bias is None else bias
        request = self.client.request(
            classification_messages(self.strategy, text),
            max_tokens=1,
            temperature=settings.temperature,
            logprobs=True,
            top_logprobs=settings.top_logprobs,
            logit_bias=self.tokens.bias(value) if value else None,
        )
        try:
            return await self.client.chat(request, accept=_has_logprobs)
        except RequestRejectedError as exc:
            if exc.cause == "endpoint" and "logprob" in str(exc).lower():
                raise LogprobsUnsupportedError(
                    f"model {self.client.config.model!r} refuses logprobs: {exc}",
                    hint=REASONING_MODEL_HINT,
                ) from None
            raise

    async def label(self, turn: Turn, *, index: int = -1) -> TurnLabel:
        """Label one turn; raises :class:`TurnFailed` (written as a failed turn) or
        :class:`LogprobsUnsupportedError` / :class:`AuthenticationError` (stop the run)."""
        text = self.strategy.render(turn, self.options)
        monitor: dict[str, Any] = {"llm_calls": 0}
        try:
            result = await self.classify(text)
        except (RequestRejectedError, RetriesExhaustedError) as exc:
            cause = exc.cause if isinstance(exc, RequestRejectedError) else None
            raise TurnFailed(_reason(exc), str(exc), monitor, cause) from None
        _account(monitor, result)
        first = first_token(result.logprobs)
        if first is None:
            raise LogprobsUnsupportedError(
                f"model {self.client.config.model!r} answered without logprobs",
                hint=REASONING_MODEL_HINT,
            )
        token = first.token if first.token is not None else result.content[:1]
        reading = read_labels(first)
        if reading is None:
            raise TurnFailed(
                "no-label",
                f"the model answered {token!r} and neither '0' nor '1' is among its "
                f"top {len(first.top)} tokens",
                monitor,
            )
        method = "top_logprobs"
        if reading.censored and self.settings.resolve_missing:
            resolved = await self._resolve(text, monitor)
            if resolved is not None:
                reading, method = resolved, "resolved"
            else:
                monitor["resolve"] = "the missing label stayed out of the top-k (the server "
                monitor["resolve"] += "reports logprobs before the bias)"
        if reading.censored:
            method = "censored"
        if token in LABELS:
            hard = int(token)
        else:
            method = "first-token-not-label"
            hard = 1 if (reading.p1 or 0.0) >= (reading.p0 or 0.0) else 0
        rationale: str | None = None
        if self.settings.rationales:
            rationale = await self._rationale(text, hard, monitor)
        return TurnLabel(
            conversationId=turn.conversation_id,
            messageId=turn.message_id,
            split=turn.split,
            bucket=turn.bucket,
            hard_label=hard,
            soft_label=round(reading.soft, 6),
            rationale=rationale,
            turnIndex=turn.turn_index,
            p0=_round(reading.p0),
            p1=_round(reading.p1),
            soft_label_range=(
                [round(reading.soft_range[0], 6), round(reading.soft_range[1], 6)]
                if reading.soft_range
                else None
            ),
            token=token,
            method=method,
            censored=reading.censored,
            strategy=self.strategy.name,
            model=self.client.config.model,
            index=index,
            monitor=monitor,
        )

    async def _resolve(self, text: str, monitor: dict[str, Any]) -> Reading | None:
        try:
            result = await self.classify(text, bias=self.settings.resolve_bias)
        except (RequestRejectedError, RetriesExhaustedError) as exc:
            monitor["resolve"] = f"failed: {exc}"
            return None
        _account(monitor, result)
        first = first_token(result.logprobs)
        reading = read_labels(first) if first is not None else None
        if reading is None or reading.censored:
            return None
        return reading

    async def _rationale(self, text: str, label: int, monitor: dict[str, Any]) -> str | None:
        settings = self.settings
        request = self.client.request(
            rationale_messages(self.strategy, text, label),
            max_tokens=settings.rationale_max_tokens,
            temperature=settings.rationale_temperature,
        )
        try:
            result = await self.client.chat(request, accept=_has_text)
        except (RequestRejectedError, RetriesExhaustedError) as exc:
            monitor["rationale_error"] = str(exc)
            return None
        _account(monitor, result)
        return result.content.strip()


def _has_logprobs(result: ChatResult) -> bool:
    """Cache a classification only when it carries a label reading (logprobs with a label)."""
    first = first_token(result.logprobs)
    return first is not None and read_labels(first) is not None


def _has_text(result: ChatResult) -> bool:
    return bool(result.content.strip())


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _reason(exc: LLMError) -> str:
    return "rejected" if isinstance(exc, RequestRejectedError) else "retries-exhausted"


def _account(monitor: dict[str, Any], result: ChatResult) -> None:
    monitor["llm_calls"] = monitor.get("llm_calls", 0) + 1
    monitor["prompt_tokens"] = monitor.get("prompt_tokens", 0) + result.prompt_tokens
    monitor["completion_tokens"] = monitor.get("completion_tokens", 0) + result.completion_tokens
    if result.cached_tokens:
        monitor["cached_tokens"] = monitor.get("cached_tokens", 0) + result.cached_tokens
    if result.cost is not None:
        monitor["cost"] = round(monitor.get("cost", 0.0) + result.cost, 8)
    monitor["latency"] = round(monitor.get("latency", 0.0) + result.latency, 4)
    if result.from_cache:
        monitor["from_cache"] = monitor.get("from_cache", 0) + 1
    if result.attempts > 1:
        monitor["retries"] = monitor.get("retries", 0) + result.attempts - 1

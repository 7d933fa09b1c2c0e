"""``sftlabel test``: can an endpoint serve both jobs? Checked with a handful of real requests.

1. label token ids (override, the server's tokenizer, or tiktoken for OpenAI families);
2. one soft-label classification: are logprobs and top_logprobs returned, what soft label;
3. logit_bias: two requests that force "0" then "1" with a +100 bias; both must obey. The forced
   token's logprob tells whether the server reports logprobs after the bias (close to 0) or
   before it;
4. a rationale;
5. one taxonomy call (intent, language, domain, task, difficulty) with JSON mode: is
   ``response_format`` accepted, is the answer valid JSON, what labels.
"""

from __future__ import annotations

import math
import time
from typing import Any

import msgspec

from sftlabel.labeling import Labeler, LabelingFailed
from sftlabel.labeling._labeler import JsonMode
from sftlabel.llm import EndpointUnavailableError, LLMClient, LLMError
from sftlabel.llm._tokens import LABELS, LabelTokens, resolve_label_tokens
from sftlabel.model import Message, Sample
from sftlabel.softlabel._classify import (
    REASONING_MODEL_HINT,
    FirstToken,
    LogprobsUnsupportedError,
    SoftLabeler,
    SoftLabelSettings,
    TurnFailed,
    first_token,
)
from sftlabel.softlabel._prompts import classification_messages
from sftlabel.softlabel._strategies import Strategy, StrategyOptions
from sftlabel.softlabel._turns import Turn
from sftlabel.taxonomy import Taxonomy

DEFAULT_MESSAGE = (
    "My Flask app returns 502 from nginx only under load, and only for requests that upload "
    "files; gunicorn logs nothing. How do I find out what is going on?"
)


class Check(msgspec.Struct, kw_only=True):
    name: str
    ok: bool | None
    """True: works; False: missing or broken; None: could not be checked."""
    detail: str = ""
    latency: float | None = None


class EndpointReport(msgspec.Struct, kw_only=True):
    model: str
    endpoint: str
    message: str
    checks: list[Check] = []
    label_token_ids: dict[str, int] | None = None
    label_token_source: str | None = None
    hard_label: int | None = None
    soft_label: float | None = None
    p0: float | None = None
    p1: float | None = None
    method: str | None = None
    censored: list[str] = []
    logprobs_reported: str | None = None
    """``after-bias``, ``before-bias`` or None when unknown."""
    rationale: str | None = None
    taxonomy_labels: dict[str, Any] | None = None
    taxonomy_confidence: dict[str, float] | None = None
    taxonomy_issues: list[str] = []
    softlabel_ready: bool = False
    label_ready: bool = False
    missing: list[str] = []
    softlabel_options: list[str] = []
    """Options that make softlabel work on this endpoint (e.g. ``--logit-bias 0``)."""
    label_options: list[str] = []
    """Options that make label work (or spare requests), e.g. ``--json-mode off``."""
    unreachable: str | None = None
    """Why no request got an answer (connection refused, DNS, TLS, not an API ...)."""

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)


async def check_endpoint(
    client: LLMClient,
    taxonomy: Taxonomy,
    strategy: Strategy,
    *,
    message: str = DEFAULT_MESSAGE,
    label_token_ids: str | None = None,
    json_mode: JsonMode = "auto",
    max_tokens: int = 1024,
) -> EndpointReport:
    """Run every check; never raises for a capability the endpoint lacks (it is reported)."""
    report = EndpointReport(
        model=client.config.model,
        endpoint=client.display_url.split("?", 1)[0],
        message=message,
    )
    try:
        tokens = await _token_ids(client, label_token_ids, report)
        if tokens is not None:
            await _softlabel_checks(client, tokens, strategy, message, report)
        await _taxonomy_check(
            client, taxonomy, message, json_mode=json_mode, max_tokens=max_tokens, report=report
        )
    except EndpointUnavailableError as exc:
        report.unreachable = exc.message
        report.checks.append(Check(name="connection", ok=False, detail=exc.message))
        report.missing = ["connection"]
        return report
    _verdicts(report, json_mode)
    return report


def _verdicts(report: EndpointReport, json_mode: JsonMode) -> None:
    """Ready or not for each job, and the options that make it work."""
    bias = report.check("logit_bias")
    if bias is not None and bias.ok is False and "did not force" in bias.detail:
        # the server ignores logit_bias: soft labels still work without the bias
        bias.ok = True
        bias.detail += " (ignored: use --logit-bias 0, and no --resolve-missing)"
        report.softlabel_options.append("--logit-bias 0")
    mode = report.check("JSON mode")
    if json_mode != "off" and mode is not None and mode.ok is False:
        report.label_options.append("--json-mode off")
    needed_soft = ("label token ids", "logprobs", "top_logprobs", "logit_bias")
    needed_label = ("taxonomy call", "JSON answer")
    # "classification" is only recorded when the request itself failed (then the checks after
    # it could not run): it is missing too
    report.missing = [
        c.name
        for c in report.checks
        if c.ok is False and c.name in (*needed_soft, "classification", *needed_label)
    ]
    report.softlabel_ready = all(
        (c := report.check(n)) is not None and c.ok is True for n in needed_soft
    )
    report.label_ready = all(
        (c := report.check(n)) is not None and c.ok is True for n in needed_label
    )


async def _token_ids(
    client: LLMClient, override: str | None, report: EndpointReport
) -> LabelTokens | None:
    try:
        tokens = await resolve_label_tokens(client, override)
    except EndpointUnavailableError:
        raise
    except LLMError as exc:
        report.checks.append(Check(name="label token ids", ok=False, detail=exc.message))
        return None
    except Exception as exc:  # a ConfigError/UsageError: say it, go on with the other checks
        report.checks.append(Check(name="label token ids", ok=False, detail=str(exc)))
        return None
    report.label_token_ids = tokens.ids
    report.label_token_source = tokens.source
    detail = f"{tokens.ids} from {tokens.source}" + ("" if tokens.verified else " (not verified)")
    report.checks.append(Check(name="label token ids", ok=True, detail=detail))
    return tokens


async def _softlabel_checks(
    client: LLMClient,
    tokens: LabelTokens,
    strategy: Strategy,
    message: str,
    report: EndpointReport,
) -> None:
    settings = SoftLabelSettings(rationales=True, resolve_missing=True)
    labeler = SoftLabeler(client, tokens, strategy, options=StrategyOptions(), settings=settings)
    started = time.monotonic()
    try:
        result = await labeler.classify(_text(labeler, message))
    except LogprobsUnsupportedError as exc:
        report.checks.append(Check(name="logprobs", ok=False, detail=exc.message))
        return
    except EndpointUnavailableError:
        raise
    except LLMError as exc:
        report.checks.append(Check(name="classification", ok=False, detail=exc.message))
        return
    latency = round(time.monotonic() - started, 3)
    first = first_token(result.logprobs)
    if first is None:
        detail = "the answer has no logprobs; " + REASONING_MODEL_HINT
        report.checks.append(Check(name="logprobs", ok=False, detail=detail, latency=latency))
        return
    report.checks.append(Check(name="logprobs", ok=True, detail="returned", latency=latency))
    wanted = settings.top_logprobs
    report.checks.append(
        Check(
            name="top_logprobs",
            ok=len(first.top) >= min(wanted, 2),
            detail=f"{len(first.top)} alternatives for {wanted} asked",
        )
    )
    await _bias_check(labeler, message, report)
    try:
        record = await labeler.label(_turn(message))
    except TurnFailed as exc:
        report.checks.append(Check(name="soft label", ok=None, detail=str(exc)))
        return
    except EndpointUnavailableError:
        raise
    except LLMError as exc:
        report.checks.append(Check(name="soft label", ok=False, detail=exc.message))
        return
    report.hard_label = record.hard_label if isinstance(record.hard_label, int) else None
    report.soft_label = record.soft_label if isinstance(record.soft_label, float) else None
    report.p0, report.p1 = record.p0, record.p1
    report.method, report.censored = record.method, record.censored
    censored = f", censored {','.join(record.censored)}" if record.censored else ""
    report.checks.append(
        Check(
            name="soft label",
            ok=True,
            detail=f"{report.soft_label} (hard {report.hard_label}, {record.method}{censored})",
        )
    )
    rationale = record.rationale if isinstance(record.rationale, str) else ""
    report.rationale = rationale or None
    report.checks.append(
        Check(
            name="rationale",
            ok=bool(rationale),
            detail=rationale[:80] if rationale else record.monitor.get("rationale_error", "empty"),
        )
    )


def _text(labeler: SoftLabeler, message: str) -> str:
    return labeler.strategy.render(_turn(message), labeler.options)


def _turn(message: str) -> Turn:
    return Turn(
        conversation_id="sftlabel-test",
        message_id="m1",
        split="",
        bucket="",
        turn_index=1,
        message=message,
        history=[],
    )


async def _forced(labeler: SoftLabeler, text: str, label: str) -> tuple[str, FirstToken | None]:
    """The first token of an answer with a +100 bias on one label token (uncached)."""
    request = labeler.client.request(
        classification_messages(labeler.strategy, text),
        max_tokens=1,
        temperature=0.0,
        logprobs=True,
        top_logprobs=labeler.settings.top_logprobs,
        logit_bias=labeler.tokens.bias(100.0, (label,)),
    )
    result = await labeler.client.chat(request, use_cache=False)
    first = first_token(result.logprobs)
    token = first.token if first is not None and first.token else result.content[:1]
    return token, first


async def _bias_check(labeler: SoftLabeler, message: str, report: EndpointReport) -> None:
    obeyed: list[bool] = []
    forced_logprobs: list[float] = []
    started = time.monotonic()
    text = _text(labeler, message)
    for label in LABELS:
        try:
            token, first = await _forced(labeler, text, label)
        except EndpointUnavailableError:
            raise
        except LLMError as exc:
            report.checks.append(Check(name="logit_bias", ok=False, detail=exc.message))
            return
        obeyed.append(token == label)
        if first is not None and label in first.top:
            forced_logprobs.append(first.top[label])
    latency = round((time.monotonic() - started) / len(LABELS), 3)
    if forced_logprobs and len(forced_logprobs) == len(LABELS):
        after = all(math.exp(lp) > 0.9 for lp in forced_logprobs)
        report.logprobs_reported = "after-bias" if after else "before-bias"
    ok = all(obeyed)
    detail = "a +100 bias forces each label" if ok else "a +100 bias did not force the label"
    if report.logprobs_reported:
        detail += f"; logprobs are reported {report.logprobs_reported.replace('-', ' the ')}"
    report.checks.append(Check(name="logit_bias", ok=ok, detail=detail, latency=latency))


async def _taxonomy_check(
    client: LLMClient,
    taxonomy: Taxonomy,
    message: str,
    *,
    json_mode: JsonMode,
    max_tokens: int,
    report: EndpointReport,
) -> None:
    labeler = Labeler(
        client, taxonomy, arbitration=False, json_mode=json_mode, max_tokens=max_tokens
    )
    sample = Sample(
        id="sftlabel-test",
        source_id="sftlabel-test",
        source_format="test",
        turn_index=1,
        total_turns=1,
        messages=[
            Message(role="user", content=message),
            Message(role="assistant", content="Let us look at the nginx and gunicorn timeouts."),
        ],
    )
    started = time.monotonic()
    try:
        validated, records = await labeler.ask(1, sample)
    except LabelingFailed as exc:
        name = "JSON answer" if exc.reason == "no-json" else "taxonomy call"
        report.checks.append(Check(name=name, ok=False, detail=str(exc)))
        if exc.reason == "no-json":
            report.checks.append(Check(name="taxonomy call", ok=True, detail="answered"))
        return
    latency = round(time.monotonic() - started, 3)
    report.checks.append(
        Check(name="taxonomy call", ok=True, detail=f"{len(records)} request(s)", latency=latency)
    )
    retried = sum(1 for r in records if r.format_error)
    report.checks.append(
        Check(
            name="JSON answer",
            ok=True,
            detail="valid JSON" + (f" after {retried} re-ask(s)" if retried else ""),
        )
    )
    if json_mode != "off":
        accepted = labeler.json_mode_active
        report.checks.append(
            Check(
                name="JSON mode",
                ok=accepted,
                detail="response_format accepted"
                if accepted
                else "response_format refused: JSON is asked for in the prompt only",
            )
        )
    report.taxonomy_labels = dict(validated.values)
    report.taxonomy_confidence = dict(validated.confidence)
    report.taxonomy_issues = list(validated.issues)

"""Planning a ``label`` session: the run directory, inputs, options and rate of a new run or a
resume (:func:`plan`), the keywords ``label`` takes, and ``--dry-run``'s estimate."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from sftlabel.api._endpoint import check_keywords, client_config, command_settings
from sftlabel.errors import UsageError
from sftlabel.llm import Budget
from sftlabel.runs import (
    Estimate,
    LabelOptions,
    RateOptions,
    RunManifest,
    conversations_of,
    estimate,
    merge_options,
    merge_rate,
    read_manifest,
)
from sftlabel.taxonomy import load_taxonomy

PathLike = str | os.PathLike[str]

FLAGS = {
    "model": "--model",
    "arbitration": "--no-arbitration",
    "max_chars": "--max-chars",
    "dedup": "--no-dedup",
}
"""CLI spellings of options whose flag is not ``--<name>``."""

_ANSWER_OPTIONS = tuple(LabelOptions.__struct_fields__)
_RATE_OPTIONS = tuple(RateOptions.__struct_fields__)


class Plan(msgspec.Struct, kw_only=True):
    root: Path
    inputs: list[str]
    given_inputs: list[str]
    options: LabelOptions
    rate: RateOptions
    manifest: RunManifest | None
    taxonomy_path: str | None


def plan(
    inputs: Sequence[PathLike] | None, opts: dict[str, Any], settings_model: str | None
) -> Plan:
    given = {k: opts.get(k) for k in _ANSWER_OPTIONS}
    rate_given = {k: opts.get(k) for k in _RATE_OPTIONS}
    resume = opts.get("resume")
    if resume is not None:
        if inputs:
            raise UsageError("--resume takes the inputs from the run; do not pass PATH too")
        root = Path(resume)
        manifest = read_manifest(root)
        if manifest.kind != "label":
            raise UsageError(f"{root} is a {manifest.kind} run, not a label run")
        merged = merge_options(manifest.options, given, flag_names=FLAGS)
        return Plan(
            root=root,
            inputs=manifest.inputs,
            given_inputs=manifest.given_inputs,
            options=msgspec.convert(merged, LabelOptions),
            rate=merge_rate(manifest.rate, rate_given),
            manifest=manifest,
            taxonomy_path=manifest.taxonomy.path if manifest.taxonomy else None,
        )
    if not inputs:
        raise UsageError(
            "give the files or directories to label", hint="sftlabel label ./data --model NAME"
        )
    model = given.get("model") or settings_model
    if not model:
        raise UsageError("no model given", hint="pass --model NAME or set SFTLABEL_MODEL")
    given["model"] = model
    missing = [str(p) for p in inputs if "://" not in str(p) and not Path(p).exists()]
    if missing:
        raise UsageError(
            f"{missing[0]}: no such file or directory",
            hint="check the path (inputs are files or directories of conversations)",
        )
    # a `generate` run directory is read as the conversations it wrote
    inputs = [p if "://" in str(p) else conversations_of(Path(p)) for p in inputs]
    options = LabelOptions(**{k: v for k, v in given.items() if v is not None})
    rate = merge_rate(RateOptions(), rate_given)
    output = opts.get("output")
    root = Path(output) if output else default_root(model, opts.get("output_root"))
    return Plan(
        root=root,
        inputs=[_absolute(os.fspath(p)) for p in inputs],
        given_inputs=[os.fspath(p) for p in inputs],
        options=options,
        rate=rate,
        manifest=None,
        taxonomy_path=None,
    )


def budget(plan: Plan) -> Budget | None:
    """The run's hard cap: what earlier sessions spent counts against it, and every request
    reserves its worst-case cost before it is sent."""
    if plan.rate.max_cost is None:
        return None
    spent = plan.manifest.spent if plan.manifest is not None else 0.0
    return Budget(plan.rate.max_cost, spent=min(spent, plan.rate.max_cost))


def _absolute(given: str) -> str:
    """An input as the manifest records it: a resolved path, or a URL as given."""
    return given if "://" in given else str(Path(given).resolve())


def default_root(model: str, under: PathLike | None = None) -> Path:
    """``runs/<YYYYmmdd_HHMMSS>_<model>`` (below ``under``, the config's ``output_root``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-") or "model"
    return Path(under or "runs") / f"{dt.datetime.now():%Y%m%d_%H%M%S}_{slug}"


def label_estimate(inputs: Sequence[PathLike], **options: Any) -> Estimate:
    """What ``label`` would send, without sending anything (``--dry-run``)."""
    keywords = {**check_label_keywords(options), "no_keyvault": True}
    settings, opts = command_settings("label", keywords)
    if not inputs and opts.get("inputs"):
        inputs = list(opts["inputs"])
    plan_ = plan(inputs, {**opts, "resume": None}, settings.get("model"))
    taxonomy = load_taxonomy(opts.get("taxonomy") or settings.get("taxonomy"))
    config = client_config(
        plan_.options.model,
        settings,
        no_cache=True,
        prices=opts.get("prices"),
        check_endpoint=False,
    )
    return estimate(plan_.inputs, plan_.options, taxonomy, config)


_KNOWN = {
    *_ANSWER_OPTIONS,
    *_RATE_OPTIONS,
    "output",
    "resume",
    "taxonomy",
    "retry_failed",
    "report",
    "inputs",
    "output_root",
    "engine",
    "ray_address",
    "shards",
    "cancel",
    "batch_settle",
    "batch_max_requests",
    "on_batch_event",
    "batch_import",
}


def check_label_keywords(options: Mapping[str, Any]) -> dict[str, Any]:
    return check_keywords(options, _KNOWN, "label")

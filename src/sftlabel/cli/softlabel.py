"""``sftlabel softlabel``: P(does not require reasoning) for every user turn, into LABELED_."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sftlabel.cli._common import plural, progress, stderr, stdout, warn
from sftlabel.cli._endpoint import (
    RATE,
    ApiKeyOption,
    ApiVersionOption,
    AzureDeploymentOption,
    BaseUrlOption,
    CacheOption,
    ConcurrencyOption,
    HeaderOption,
    ModelOption,
    NoCacheOption,
    PricesOption,
    RpmOption,
    TimeoutOption,
    TpmOption,
    build_client_config,
    check_budget,
)
from sftlabel.cli._keyvault import KeyVaultOption, NoKeyVaultOption, SecretOption, apply_vault_key
from sftlabel.config import resolve_settings
from sftlabel.errors import UsageError
from sftlabel.model import encode
from sftlabel.runs import now
from sftlabel.softlabel import (
    DEFAULT_STRATEGY,
    METADATA,
    PROBLEMS,
    SoftLabelJob,
    SoftLabelSettings,
    SoftOutcome,
    SoftOutput,
    SoftRunState,
    StrategyOptions,
    build_metadata,
    default_output,
    get_strategy,
    run_softlabel,
    turn_stream,
)
from sftlabel.storage import Staged, stage

TASK = "Soft labels"


def softlabel(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="A RAW dataset folder (`train|val|test/<bucket>.json`), conversation files or "
            "directories; fsspec URLs (az://, s3://, gs://) with the matching extra.",
            show_default=False,
            metavar="INPUT",
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Output folder [default: `LABELED_<dataset>` beside the input].",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output folder.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Finish an existing output: label only the missing turns."),
    ] = False,
    strategy: Annotated[
        str,
        typer.Option(
            help="What the model sees: user_message_only, with_context, with_response "
            "(plugins: `sftlabel info`).",
            rich_help_panel=TASK,
        ),
    ] = DEFAULT_STRATEGY,
    context_turns: Annotated[
        int,
        typer.Option(min=0, help="with_context: previous turns shown.", rich_help_panel=TASK),
    ] = 2,
    rationales: Annotated[
        bool,
        typer.Option(
            "--rationales/--no-rationales",
            help="Also ask for a 2-4 sentence rationale of each label (a second call per turn).",
            rich_help_panel=TASK,
        ),
    ] = True,
    top_logprobs: Annotated[
        int,
        typer.Option(min=1, max=20, help="Alternatives read per position.", rich_help_panel=TASK),
    ] = 5,
    logit_bias: Annotated[
        float,
        typer.Option(
            min=0, max=100, help="Bias added to both label tokens (0: none).", rich_help_panel=TASK
        ),
    ] = 5.0,
    label_token_ids: Annotated[
        str | None,
        typer.Option(
            help="Token ids of '0' and '1' for this model, e.g. 0=15,1=16 [default: from the "
            "server's tokenizer, or tiktoken for OpenAI models].",
            rich_help_panel=TASK,
            show_default=False,
        ),
    ] = None,
    resolve_missing: Annotated[
        bool,
        typer.Option(
            "--resolve-missing",
            help="When a label token is missing from top_logprobs, ask once more with a large "
            "bias on both label tokens to read its logprob.",
            rich_help_panel=TASK,
        ),
    ] = False,
    limit: Annotated[
        int | None, typer.Option(min=0, help="Label at most N turns.", rich_help_panel=TASK)
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            help="Stop cleanly once this many USD are spent (--resume to go on).",
            min=0,
            rich_help_panel=RATE,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Count turns and requests; send nothing.", rich_help_panel=RATE
        ),
    ] = False,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    header: HeaderOption = None,
    azure_deployment: AzureDeploymentOption = None,
    api_version: ApiVersionOption = "2024-10-21",
    keyvault: KeyVaultOption = None,
    secret: SecretOption = None,
    no_keyvault: NoKeyVaultOption = False,
    timeout: TimeoutOption = 120.0,
    cache: CacheOption = None,
    no_cache: NoCacheOption = False,
    concurrency: ConcurrencyOption = 50,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    prices: PricesOption = None,
    config: Annotated[Path | None, typer.Option(help="Config file (env SFTLABEL_CONFIG).")] = None,
) -> None:
    """Soft-label every user turn with P(the message does NOT require reasoning).

    One classification per turn (max_tokens=1, logprobs, a logit bias on the '0'/'1' tokens):
    `hard_label` is the generated token, `soft_label` = P("1") / (P("0") + P("1")). With
    rationales (the default) a second call explains the label. A RAW dataset folder
    `<dataset>/train|val|test/<bucket>.json` is written to `LABELED_<dataset>/` beside it
    (`<split>/<bucket>.jsonl` + `labeling_metadata.json`); the input is never written. Exit
    status: 0 all labeled, 1 some turns failed, 2 usage error, 3 aborted.
    """
    settings = resolve_settings(
        {"model": model, "base_url": base_url, "api_key": api_key}, config_file=config
    )
    chosen = settings.get("model")
    if not chosen and not dry_run:
        raise UsageError("no model given", hint="pass --model NAME or set SFTLABEL_MODEL")
    if overwrite and resume:
        raise UsageError("--overwrite and --resume exclude each other")
    the_strategy = get_strategy(strategy)
    apply_vault_key(
        settings, keyvault, secret, no_keyvault=no_keyvault, azure=azure_deployment is not None
    )
    soft_settings = SoftLabelSettings(
        top_logprobs=top_logprobs,
        logit_bias=logit_bias,
        rationales=rationales,
        resolve_missing=resolve_missing,
    )
    cache_dir = settings.get("cache_dir")
    with stage(
        inputs, output, default_output, cache_dir=Path(cache_dir) if cache_dir else None
    ) as staged:
        out = SoftOutput(staged.output, staged.inputs)
        if dry_run:
            _dry_run(staged.inputs, limit, soft_settings)
            return
        out.check(overwrite=overwrite, resume=resume)
        previous = out.read_metadata()
        if previous and previous.get("model") not in (None, chosen):
            raise UsageError(
                f"{staged.display_output} was labeled with {previous.get('model')!r}, "
                f"not {chosen!r}",
                hint="resume with the same --model, or write elsewhere with -o",
            )
        client_config = build_client_config(
            chosen or "",
            settings,
            headers=header,
            azure_deployment=azure_deployment,
            api_version=api_version,
            timeout=timeout,
            concurrency=concurrency,
            rpm=rpm,
            tpm=tpm,
            cache=cache,
            no_cache=no_cache,
            prices=prices,
        )
        check_budget(client_config, max_cost)
        job = SoftLabelJob(
            inputs=staged.inputs,
            output=out,
            client_config=client_config,
            strategy=the_strategy,
            options=StrategyOptions(context_turns=context_turns),
            settings=soft_settings,
            label_token_ids=label_token_ids,
            concurrency=concurrency,
            limit=limit,
            max_cost=max_cost,
            sources=list(inputs),
        )
        outcome = _execute(job, staged, previous)
    if outcome.status == "aborted":
        raise typer.Exit(3)
    if outcome.status == "budget":
        stderr.print(
            f"stopped: {outcome.message}; continue by running the same command with --resume",
            markup=False,
        )
        raise typer.Exit(3)
    raise typer.Exit(1 if outcome.state.failed else 0)


softlabel.command_settings = {"no_args_is_help": True}  # type: ignore[attr-defined]


def _execute(job: SoftLabelJob, staged: Staged, previous: dict[str, Any] | None) -> SoftOutcome:
    started_at = now()
    with progress("counting turns") as update:
        total = sum(1 for _ in turn_stream(job.inputs, job.limit))
        update(f"{total:,}")
    stderr.print(f"output: {staged.display_output}", markup=False)
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]soft-labeling"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    state = SoftRunState()
    with Progress(*columns, console=stderr, transient=False, disable=not stderr.is_terminal) as bar:
        task = bar.add_task("softlabel", total=total, detail="")

        def on_update(state: SoftRunState) -> None:
            stats = state.client
            elapsed = max(1e-9, time.monotonic() - state.started)
            rate = (state.labeled + state.failed) / elapsed
            cost = f" ${stats.cost:,.4f}" if stats.cost_known else ""
            bar.update(
                task,
                completed=state.done_before + state.labeled + state.failed,
                detail=f"{rate:.1f}/s{cost} · 429s {stats.rate_limited} · failed {state.failed}",
            )

        try:
            outcome = anyio.run(lambda: run_softlabel(job, state=state, on_update=on_update))
        except KeyboardInterrupt:
            outcome = SoftOutcome(status="aborted", state=state, message="interrupted")
            _finish(job, outcome, staged, previous, started_at)
            stderr.print(
                "interrupted: run the same command with --resume to finish",
                style="yellow",
                markup=False,
            )
            raise typer.Exit(3) from None
    _finish(job, outcome, staged, previous, started_at)
    return outcome


def _finish(
    job: SoftLabelJob,
    outcome: SoftOutcome,
    staged: Staged,
    previous: dict[str, Any] | None,
    started_at: str,
) -> None:
    state = outcome.state
    problems_path = job.output.root / PROBLEMS
    if outcome.problems:
        job.output.root.mkdir(parents=True, exist_ok=True)
        with problems_path.open("wb") as handle:
            for item in outcome.problems:
                handle.write(encode(item) + b"\n")
        for item in outcome.problems[:5]:
            warn(str(item))
    metadata = build_metadata(job, outcome, previous=previous, started_at=started_at)
    job.output.write_metadata(metadata)
    staged.sync()
    stats = state.client
    counts = metadata["counts"]
    tokens = state.tokens
    lines = [
        f"{plural(state.labeled, 'turn')} labeled, {state.failed:,} failed"
        + (f", {state.skipped:,} already done" if state.skipped else "")
        + (f", {state.censored:,} with a censored label token" if state.censored else ""),
        f"label tokens {tokens.ids} from {tokens.source}" if tokens else "",
        f"{stats.requests:,} requests ({stats.cache_hits:,} from cache), {stats.retries:,} retries,"
        f" {stats.rate_limited:,} rate-limited (429)",
        f"{stats.prompt_tokens:,} prompt + {stats.completion_tokens:,} completion tokens"
        + (f", ${stats.cost:,.4f}" if stats.cost_known else ", cost unknown for this model"),
        f"hard labels over the whole output: {counts['hard_labels']}, "
        f"mean soft label {counts['mean_soft_label']}",
    ]
    if state.problems:
        lines.append(f"{state.problems:,} input problems ({PROBLEMS})")
    if outcome.message and outcome.status == "aborted":
        lines.append(f"aborted: {outcome.message}")
    lines.append(f"outputs in {staged.display_output}/ ({METADATA} …)")
    for line in lines:
        if line:
            stderr.print(line, markup=False)


def _dry_run(inputs: list[Path], limit: int | None, settings: SoftLabelSettings) -> None:
    problems = 0

    def count(_: object) -> None:
        nonlocal problems
        problems += 1

    with progress("reading"):
        turns = sum(1 for _ in turn_stream(inputs, limit, count))
    per_turn = 2 if settings.rationales else 1
    stdout.print(
        f"dry run: nothing was sent\n{turns:,} turns, {turns * per_turn:,} requests "
        f"({per_turn} per turn{'' if settings.rationales else ', --no-rationales'})"
        + (f"\n{problems:,} input problems (see `sftlabel detect`)" if problems else ""),
        markup=False,
    )

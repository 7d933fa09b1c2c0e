"""``sftlabel test``: check an endpoint before a big run."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import anyio
import msgspec
import typer
from rich.table import Table

from sftlabel.cli._common import stdout
from sftlabel.cli._endpoint import (
    ApiKeyOption,
    ApiVersionOption,
    AzureDeploymentOption,
    BaseUrlOption,
    HeaderOption,
    ModelOption,
    ProfileOption,
    TimeoutOption,
    build_client_config,
)
from sftlabel.cli._examples import epilog
from sftlabel.cli._keyvault import KeyVaultOption, NoKeyVaultOption, SecretOption, apply_vault_key
from sftlabel.config import resolve_settings
from sftlabel.errors import UsageError
from sftlabel.llm import LLMClient
from sftlabel.softlabel import DEFAULT_STRATEGY, get_strategy
from sftlabel.softlabel._check import DEFAULT_MESSAGE, EndpointReport, check_endpoint
from sftlabel.taxonomy import load_taxonomy

_MARK = {True: "[green]yes[/]", False: "[red]no[/]", None: "[yellow]?[/]"}


def test(
    message: Annotated[
        str, typer.Option(help="The user message to classify and label.", show_default=False)
    ] = DEFAULT_MESSAGE,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    label_token_ids: Annotated[
        str | None,
        typer.Option(help="Token ids of '0' and '1', e.g. 0=15,1=16 (see softlabel)."),
    ] = None,
    strategy: Annotated[str, typer.Option(help="Soft-label strategy.")] = DEFAULT_STRATEGY,
    json_mode: Annotated[
        Literal["auto", "on", "off"], typer.Option(help="JSON mode of the taxonomy call.")
    ] = "auto",
    taxonomy: Annotated[
        Path | None, typer.Option(help="Taxonomy directory (env SFTLABEL_TAXONOMY).")
    ] = None,
    max_tokens: Annotated[
        int, typer.Option(min=16, help="Answer length limit of the taxonomy call.")
    ] = 1024,
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
    config: Annotated[Path | None, typer.Option(help="Config file (env SFTLABEL_CONFIG).")] = None,
    profile: ProfileOption = None,
) -> None:
    """Check that an endpoint can serve both jobs (softlabel and label).

    Sends one soft-label classification (with its rationale), two logit-bias probes and one
    taxonomy call, then prints latency, the label token ids and how they were found, whether
    logprobs, top_logprobs, logit_bias and JSON mode are honoured, the soft label, the rationale
    and the taxonomy labels. Nothing is cached. Each verdict names the options that make the
    job work on this endpoint (softlabel "ready with --logit-bias 0" when the server ignores
    logit_bias). An endpoint that cannot be reached (connection refused, DNS, TLS, answers that
    are not an API) is reported within about 5 s.

    Exit status: 0 the endpoint serves both jobs (maybe with the options named), 1 a capability
    is missing (the report says which), 2 usage error, 3 the endpoint cannot be reached.
    """
    settings = resolve_settings(
        {"model": model, "base_url": base_url, "api_key": api_key, "taxonomy": taxonomy},
        config_file=config,
        profile=profile,
    )
    tier = settings.defaults  # the profile's endpoint options, under the flags
    azure_deployment = azure_deployment or tier.get("azure_deployment")
    api_version = api_version or tier.get("api_version")
    keyvault = keyvault or tier.get("keyvault")
    secret = secret or tier.get("secret")
    timeout = timeout or tier.get("timeout")
    chosen = settings.get("model")
    if not chosen:
        raise UsageError("no model given", hint="pass --model NAME or set SFTLABEL_MODEL")
    apply_vault_key(
        settings, keyvault, secret, no_keyvault=no_keyvault, azure=azure_deployment is not None
    )
    client_config = build_client_config(
        chosen,
        settings,
        headers=header,
        azure_deployment=azure_deployment,
        api_version=api_version,
        timeout=timeout,
        concurrency=4,
        rpm=None,
        tpm=None,
        cache=None,
        no_cache=True,
        prices=None,
    )
    # answer fast on a dead endpoint: two seconds of connection failures are enough here, and
    # 60 s without an answer (429s, 5xx), or --timeout if longer (the client's rule)
    client_config = dataclasses.replace(
        client_config,
        dead_after=2.0,
        max_unavailable=60.0,
        connect_timeout=min(client_config.connect_timeout, 4.0),
    )
    tax = load_taxonomy(settings.get("taxonomy"))
    the_strategy = get_strategy(strategy)

    async def run() -> EndpointReport:
        async with LLMClient(client_config) as client:
            return await check_endpoint(
                client,
                tax,
                the_strategy,
                message=message,
                label_token_ids=label_token_ids,
                json_mode=json_mode,
                max_tokens=max_tokens,
            )

    report = anyio.run(run)
    if as_json:
        typer.echo(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
    else:
        _render(report)
    if report.unreachable is not None:
        raise typer.Exit(3)
    raise typer.Exit(0 if report.softlabel_ready and report.label_ready else 1)


def _render(report: EndpointReport) -> None:
    stdout.print(f"[bold]{report.model}[/] at {report.endpoint}", highlight=False)
    table = Table(box=None, pad_edge=False)
    table.add_column("check")
    table.add_column("ok")
    table.add_column("latency", justify="right")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        latency = f"{check.latency:.2f} s" if check.latency is not None else ""
        table.add_row(check.name, _MARK[check.ok], latency, check.detail)
    stdout.print(table)
    if report.rationale:
        stdout.print(f"rationale: {report.rationale}", markup=False)
    if report.taxonomy_labels is not None:
        labels = ", ".join(f"{k}={v}" for k, v in report.taxonomy_labels.items())
        stdout.print(f"taxonomy (call 1): {labels}", markup=False)
    for issue in report.taxonomy_issues[:5]:
        stdout.print(f"  validation: {issue}", markup=False)
    if report.unreachable is not None:
        stdout.print(f"[red]not reachable[/]: {report.unreachable}", highlight=False)
        return
    verdict = {
        "softlabel": (report.softlabel_ready, report.softlabel_options),
        "label": (report.label_ready, report.label_options),
    }
    for job, (ready, options) in verdict.items():
        if ready and options:
            stdout.print(f"{job}: [green]ready[/] with {' '.join(options)}", highlight=False)
        else:
            stdout.print(f"{job}: {'[green]ready[/]' if ready else '[red]not ready[/]'}")
    if report.missing:
        stdout.print(f"missing: {', '.join(report.missing)}", markup=False)


test.command_settings = {"epilog": epilog("test")}  # type: ignore[attr-defined]

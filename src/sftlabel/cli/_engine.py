"""The ``--engine`` options shared by the long-running commands (label, softlabel, arbitrate)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

ENGINE = "Engine"

EngineOption = Annotated[
    Literal["local", "ray"],
    typer.Option(
        help="local: this process; ray: one run in shards over a Ray cluster (the cores of "
        "this machine, or --ray-address); needs `pip install 'sftlabel[ray]'`.",
        rich_help_panel=ENGINE,
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        help="With --engine ray: the cluster to join (auto, HOST:PORT, ray://...; env "
        "RAY_ADDRESS) [default: a local cluster sized to this machine's cores].",
        rich_help_panel=ENGINE,
        show_default=False,
    ),
]
ShardsOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="With --engine ray: shards to split the run in (recorded; a resume keeps it) "
        "[default: the cluster's CPUs].",
        rich_help_panel=ENGINE,
        show_default=False,
    ),
]


def engine_options(engine: str, ray_address: str | None, shards: int | None) -> dict[str, Any]:
    """The API keywords of the engine options."""
    return {"engine": engine, "ray_address": ray_address, "shards": shards}

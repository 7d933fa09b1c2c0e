"""Key Vault options of the commands that call Azure OpenAI (softlabel, test)."""

from __future__ import annotations

from typing import Annotated

import typer

from sftlabel.cli._endpoint import CONNECTION
from sftlabel.config import Settings
from sftlabel.errors import UsageError
from sftlabel.llm._keyvault import fetch_secret

KeyVaultOption = Annotated[
    str | None,
    typer.Option(
        "--keyvault",
        envvar="SFTLABEL_KEYVAULT",
        help="Azure Key Vault (name or URL) holding the API key (needs sftlabel[azure]; "
        "env SFTLABEL_KEYVAULT).",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]

SecretOption = Annotated[
    str | None,
    typer.Option(
        "--secret",
        envvar="SFTLABEL_KEYVAULT_SECRET",
        help="Name of the Key Vault secret holding the API key (env SFTLABEL_KEYVAULT_SECRET).",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]

NoKeyVaultOption = Annotated[
    bool,
    typer.Option(
        "--no-keyvault",
        help="Do not read the key from Key Vault (use --api-key / the environment).",
        rich_help_panel=CONNECTION,
    ),
]


def apply_vault_key(
    settings: Settings,
    vault: str | None,
    secret: str | None,
    *,
    no_keyvault: bool,
    azure: bool,
) -> None:
    """Put the API key read from Key Vault into ``settings`` (when a vault is configured and not
    switched off): the Azure key for an Azure deployment, the API key otherwise."""
    if no_keyvault or vault is None:
        return
    if not secret:
        raise UsageError("--keyvault needs --secret NAME (the secret holding the API key)")
    key = fetch_secret(vault, secret)
    settings.override("azure_api_key" if azure else "api_key", key, "keyvault", f"{vault}/{secret}")

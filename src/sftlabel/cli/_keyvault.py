"""Key Vault options of the commands that call Azure OpenAI (softlabel, test)."""

from __future__ import annotations

from typing import Annotated

import typer

from sftlabel.api._endpoint import apply_vault_key
from sftlabel.cli._endpoint import CONNECTION

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


__all__ = ["KeyVaultOption", "NoKeyVaultOption", "SecretOption", "apply_vault_key"]

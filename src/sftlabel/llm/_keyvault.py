"""API keys from Azure Key Vault (optional extra ``sftlabel[azure]``: azure-identity and
azure-keyvault-secrets). Credentials come from ``DefaultAzureCredential``: environment
variables, workload or managed identity, or an ``az login`` session."""

from __future__ import annotations

from sftlabel.errors import ConfigError


def vault_url(vault: str) -> str:
    """``my-vault`` -> ``https://my-vault.vault.azure.net``; a URL is kept as given."""
    if "://" in vault:
        return vault.rstrip("/")
    return f"https://{vault}.vault.azure.net"


def fetch_secret(vault: str, name: str) -> str:
    """The value of secret ``name`` in Key Vault ``vault`` (a name or a URL)."""
    try:
        from azure.core.exceptions import AzureError
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient
    except ImportError:
        raise ConfigError(
            "--keyvault needs azure-identity and azure-keyvault-secrets",
            hint="pip install 'sftlabel[azure]', or pass the key in AZURE_OPENAI_API_KEY and "
            "use --no-keyvault",
        ) from None
    url = vault_url(vault)
    try:
        client = SecretClient(vault_url=url, credential=DefaultAzureCredential())
        value = client.get_secret(name).value
    except AzureError as exc:
        # the exception text never holds the secret; keep only its first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot read secret {name!r} from Key Vault {url}: {first}",
            hint="check `az login` (or the AZURE_CLIENT_* variables) and the vault's access "
            "policy, or use --no-keyvault with AZURE_OPENAI_API_KEY",
        ) from None
    if not value:
        raise ConfigError(f"secret {name!r} in Key Vault {url} is empty")
    return str(value)  # typed Any when the azure extra is not installed

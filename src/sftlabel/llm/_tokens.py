"""Token ids of the soft-label answers "0" and "1", resolved per model.

``logit_bias`` takes token *ids*, and ids differ between tokenizers: "0"/"1" are 15/16 in OpenAI's
cl100k/o200k (and Llama-3/Qwen) but 32/33 in SmolLM2. Sending OpenAI ids to another model biases
two unrelated tokens. So the ids come, in this order, from:

1. ``--label-token-ids 0=ID,1=ID`` (trusted as given);
2. the server's own tokenizer: vLLM and llama.cpp ``/tokenize`` (and ``/detokenize``),
   llama-cpp-python ``/extras/tokenize`` (and ``/extras/detokenize``), probed beside the
   endpoint's base URL;
3. tiktoken for OpenAI model families (gpt-3.5/4/4o/4.1/5, o-series), **offline**: the BPE ranks
   of cl100k_base and o200k_base ship inside the package (``sftlabel/data/tiktoken``, taken from
   the MIT-licensed npm package ``tiktoken@1.0.22``) because tiktoken would otherwise download them
   from a blob store at run time.

Every id is verified: it must be a single token that decodes back to its digit.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import msgspec
import tiktoken

from sftlabel.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from sftlabel.llm._client import LLMClient

LABELS = ("0", "1")

# Model-name prefixes and the OpenAI encoding each family uses (tiktoken's own table, kept here
# so that no lookup ever triggers a download).
_OPENAI_FAMILIES: tuple[tuple[str, str], ...] = (
    ("gpt-5", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-oss", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),  # Azure deployment spelling
)


class LabelTokens(msgspec.Struct, kw_only=True, frozen=True):
    """The ids of the label tokens and how they were found."""

    ids: dict[str, int]
    """``{"0": id, "1": id}``."""
    source: str
    """``override``, ``tokenize:<url path>`` or ``tiktoken:<encoding>``."""
    verified: bool = True
    """True when each id was checked to be one token decoding back to its digit."""

    def bias(self, value: float, labels: tuple[str, ...] = LABELS) -> dict[str, float]:
        """A ``logit_bias`` map adding ``value`` to the given labels' tokens."""
        return {str(self.ids[label]): value for label in labels}


def parse_label_token_ids(text: str) -> LabelTokens:
    """``"0=15,1=16"`` -> LabelTokens (from ``--label-token-ids``)."""
    ids: dict[str, int] = {}
    for item in text.split(","):
        label, sep, value = item.strip().partition("=")
        if not sep or label.strip() not in LABELS or not value.strip().isdigit():
            raise UsageError(
                f"--label-token-ids {text!r} is not '0=ID,1=ID'",
                hint="for example --label-token-ids 0=15,1=16",
            )
        ids[label.strip()] = int(value)
    if set(ids) != set(LABELS):
        raise UsageError(f"--label-token-ids {text!r} must give both 0 and 1")
    if ids["0"] == ids["1"]:
        raise UsageError(f"--label-token-ids {text!r}: the two labels need different tokens")
    return LabelTokens(ids=ids, source="override", verified=False)


def openai_encoding_name(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model family, or None for other models."""
    name = model.lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" (LiteLLM/OpenRouter spelling)
    for prefix, encoding in _OPENAI_FAMILIES:
        if name == prefix or name.startswith((prefix + "-", prefix + ".", prefix + ":")):
            return encoding
        if prefix in ("o1", "o3", "o4") and name.startswith(prefix):
            return encoding
    return None


@functools.cache
def offline_encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken Encoding built from the ranks shipped with sftlabel (never downloads)."""
    resource = resources.files("sftlabel") / "data" / "tiktoken" / f"{name}.json.gz"
    try:
        data = json.loads(gzip.decompress(resource.read_bytes()))
    except FileNotFoundError:
        raise ConfigError(f"no offline tiktoken encoding {name!r} in this installation") from None
    ranks: dict[bytes, int] = {}
    for line in data["bpe_ranks"].split("\n"):
        if not line:
            continue
        _, offset, *tokens = line.split(" ")
        start = int(offset)
        for position, token in enumerate(tokens):
            ranks[base64.b64decode(token)] = start + position
    return tiktoken.Encoding(
        name=name,
        pat_str=data["pat_str"],
        mergeable_ranks=ranks,
        special_tokens=data["special_tokens"],
    )


def tiktoken_label_tokens(model: str) -> LabelTokens | None:
    """Label token ids from tiktoken for an OpenAI model family (None for other models)."""
    encoding_name = openai_encoding_name(model)
    if encoding_name is None:
        return None
    encoding = offline_encoding(encoding_name)
    ids: dict[str, int] = {}
    for label in LABELS:
        tokens = encoding.encode(label)
        if len(tokens) != 1 or encoding.decode(tokens) != label:
            raise ConfigError(f"{encoding_name} does not encode {label!r} as one token")
        ids[label] = tokens[0]
    return LabelTokens(ids=ids, source=f"tiktoken:{encoding_name}")


# (tokenize path, detokenize path): vLLM and llama.cpp's server, then llama-cpp-python's.
_TOKENIZE_APIS: tuple[tuple[str, str], ...] = (
    ("tokenize", "detokenize"),
    ("extras/tokenize", "extras/detokenize"),
)


def _roots(base_url: str) -> list[str]:
    """Where a tokenize endpoint may live: beside the base URL and at its server root."""
    base = base_url.rstrip("/")
    roots = [base]
    if base.endswith("/v1"):
        roots.append(base[: -len("/v1")])
    return roots


def _tokens_of(data: Any) -> list[int] | None:
    if isinstance(data, dict):
        tokens = data.get("tokens")
        if isinstance(tokens, list):
            # llama.cpp may answer [{"id": 32, "piece": "0"}] when asked for pieces
            out = [t["id"] if isinstance(t, dict) else t for t in tokens]
            if all(isinstance(t, int) for t in out):
                return out
    return None


def _text_of(data: Any) -> str | None:
    if isinstance(data, dict):
        for key in ("text", "prompt", "content"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return None


async def _post_json(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Any:
    try:
        response = await client.post(url, json=body)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        return response.json()
    except ValueError:
        return None


async def server_label_tokens(client: LLMClient) -> LabelTokens | None:
    """Label token ids from the server's tokenize endpoint (vLLM, llama.cpp, llama-cpp-python),
    verified through its detokenize endpoint when it has one. None when no endpoint answers."""
    base_url = client.config.base_url
    if not base_url or client.config.azure:
        return None
    http = client.http
    model = client.config.model
    for root in _roots(base_url):
        for tokenize, detokenize in _TOKENIZE_APIS:
            url = f"{root}/{tokenize}"
            ids: dict[str, int] = {}
            for label in LABELS:
                # vLLM wants {"model", "prompt"}, llama.cpp {"content"}, llama-cpp-python
                # {"input"}; one body carries all three, plus "add_special" off (vLLM, llama.cpp)
                body = {
                    "model": model,
                    "prompt": label,
                    "content": label,
                    "input": label,
                    "add_special_tokens": False,
                    "add_special": False,
                }
                tokens = _tokens_of(await _post_json(http, url, body))
                if tokens is None:
                    break
                if len(tokens) != 1:
                    raise ConfigError(
                        f"{model}: the server's tokenizer ({url}) splits {label!r} into "
                        f"{len(tokens)} tokens {tokens}; a one-token label is needed",
                        hint="pass --label-token-ids 0=ID,1=ID if you know better ids",
                    )
                ids[label] = tokens[0]
            if len(ids) != len(LABELS):
                continue
            verified = await _verify(http, f"{root}/{detokenize}", model, ids)
            path = urlsplit(url).path
            return LabelTokens(ids=ids, source=f"tokenize:{path}", verified=verified)
    return None


async def _verify(http: httpx.AsyncClient, url: str, model: str, ids: dict[str, int]) -> bool:
    """Decode each id through the server's detokenize endpoint (False when it has none)."""
    for label, token in ids.items():
        data = await _post_json(http, url, {"model": model, "tokens": [token]})
        text = _text_of(data)
        if text is None:
            return False
        if text.strip() != label:
            raise ConfigError(
                f"{model}: token {token} decodes to {text!r}, not {label!r} ({url})",
                hint="pass --label-token-ids 0=ID,1=ID",
            )
    return True


async def resolve_label_tokens(client: LLMClient, override: str | None = None) -> LabelTokens:
    """The label token ids for the client's model (see the module doc for the order)."""
    if override:
        return parse_label_token_ids(override)
    found = await server_label_tokens(client)
    if found is not None:
        return found
    found = tiktoken_label_tokens(client.config.model)
    if found is not None:
        return found
    raise ConfigError(
        f"cannot tell the token ids of '0' and '1' for model {client.config.model!r}: the "
        "server has no tokenize endpoint and it is not an OpenAI model family",
        hint="pass --label-token-ids 0=ID,1=ID (the ids of the tokens '0' and '1' in the "
        "model's tokenizer)",
    )

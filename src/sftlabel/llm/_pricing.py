"""Model prices, to turn token counts into cost.

USD per million tokens: (input, cached input, output). Matched on the longest prefix of the
model name (lowercase, without a ``provider/`` prefix). Prices change: override them with a
JSON or TOML file mapping model prefixes to ``{"input": .., "cached_input": .., "output": ..}``.
Batch APIs (OpenAI, Azure, Anthropic) bill half the online price: ``batch_input`` /
``batch_output`` / ``batch_cached_input`` in a price file set other batch prices.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from sftlabel.errors import ConfigError


class Price(msgspec.Struct, frozen=True, kw_only=True):
    input: float
    output: float
    cached_input: float | None = None
    batch_input: float | None = None
    """Batch-API prices (None: ``BATCH_SHARE`` of the online ones)."""
    batch_output: float | None = None
    batch_cached_input: float | None = None

    def batch(self) -> Price:
        """The prices of the batch API."""
        cached = self.cached_input if self.cached_input is not None else self.input

        def share(given: float | None, online: float) -> float:
            return given if given is not None else online * BATCH_SHARE

        return Price(
            input=share(self.batch_input, self.input),
            output=share(self.batch_output, self.output),
            cached_input=share(self.batch_cached_input, cached),
        )

    def cost(self, prompt: int, completion: int, cached: int = 0) -> float:
        cached_rate = self.cached_input if self.cached_input is not None else self.input
        fresh = max(prompt - cached, 0)
        return (fresh * self.input + cached * cached_rate + completion * self.output) / 1e6


BATCH_SHARE = 0.5
"""Batch-API prices as a share of the online ones (OpenAI, Azure OpenAI, Anthropic: half)."""

PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(input=0.15, cached_input=0.075, output=0.60),
    "gpt-4o": Price(input=2.50, cached_input=1.25, output=10.00),
    "gpt-4.1-nano": Price(input=0.10, cached_input=0.025, output=0.40),
    "gpt-4.1-mini": Price(input=0.40, cached_input=0.10, output=1.60),
    "gpt-4.1": Price(input=2.00, cached_input=0.50, output=8.00),
    "gpt-5-nano": Price(input=0.05, cached_input=0.005, output=0.40),
    "gpt-5-mini": Price(input=0.25, cached_input=0.025, output=2.00),
    "gpt-5": Price(input=1.25, cached_input=0.125, output=10.00),
    "o4-mini": Price(input=1.10, cached_input=0.275, output=4.40),
    "o3": Price(input=2.00, cached_input=0.50, output=8.00),
    "deepseek-v3": Price(input=0.28, cached_input=0.028, output=0.42),
    "deepseek-chat": Price(input=0.28, cached_input=0.028, output=0.42),
    "deepseek-reasoner": Price(input=0.28, cached_input=0.028, output=0.42),
    "claude-haiku-4": Price(input=1.00, cached_input=0.10, output=5.00),
    "claude-sonnet-4": Price(input=3.00, cached_input=0.30, output=15.00),
    "claude-opus-4": Price(input=15.00, cached_input=1.50, output=75.00),
    "qwen3-coder": Price(input=0.22, output=0.95),
}


CACHED_SHARE: dict[str, float] = {
    "deepseek": 0.1,
    "claude": 0.1,
    "gpt-5": 0.1,
    "gpt-4.1": 0.25,
    "o4": 0.25,
    "o3": 0.25,
    "gpt-4o": 0.5,
    "o1": 0.5,
}
"""The cached-input price as a share of the input price, per model family (longest prefix),
for a price without ``cached_input`` (a ``--prices`` file entry): DeepSeek bills a cache hit at
about a tenth, Anthropic a cache read at a tenth, OpenAI half for gpt-4o/o1, a quarter for
gpt-4.1/o3/o4, a tenth for gpt-5. Other families: the input price (no discount assumed)."""


class PriceTable:
    """Prices by model-name prefix (longest prefix wins)."""

    def __init__(self, prices: dict[str, Price] | None = None) -> None:
        self.prices = dict(PRICES if prices is None else prices)

    @classmethod
    def with_overrides(cls, path: Path | None) -> PriceTable:
        table = cls()
        if path is not None:
            table.prices.update(load_prices(path))
        return table

    def lookup(self, model: str) -> Price | None:
        name = model.lower().rsplit("/", 1)[-1]
        best = max((p for p in self.prices if name.startswith(p)), key=len, default=None)
        if best is None:
            return None
        price = self.prices[best]
        if price.cached_input is None:
            family = max((f for f in CACHED_SHARE if name.startswith(f)), key=len, default=None)
            if family is not None:
                share = CACHED_SHARE[family]
                price = msgspec.structs.replace(price, cached_input=price.input * share)
        return price

    def cost(
        self, model: str, prompt: int, completion: int, cached: int = 0, *, batch: bool = False
    ) -> float | None:
        """USD for the tokens (``batch``: at the batch-API prices); None for an unknown model."""
        price = self.lookup(model)
        if price is None:
            return None
        return (price.batch() if batch else price).cost(prompt, completion, cached)


def load_prices(path: Path) -> dict[str, Price]:
    try:
        data = path.read_bytes()
        if path.suffix.lower() == ".toml":
            return msgspec.toml.decode(data, type=dict[str, Price])
        return msgspec.json.decode(data, type=dict[str, Price])
    except OSError as exc:
        raise ConfigError(f"cannot read the price file {path}: {exc.strerror or exc}") from None
    except (msgspec.DecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"invalid price file {path}: {exc}",
            hint='expected {"model-prefix": {"input": 0.5, "output": 1.5, "cached_input": 0.1}}',
        ) from None

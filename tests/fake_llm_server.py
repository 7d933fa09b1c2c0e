"""A scriptable fake OpenAI-compatible LLM server for integration tests and benchmarks.

Standard library only (one asyncio event loop, asyncio streams), so benchmarks can run it without
the test dependencies::

    python tests/fake_llm_server.py --port 0 --latency 0.2 [--rpm N] [--tpm N]
        [--fault-rate 429=0.1,500=0.05] [--seed 0] [--port-file PATH]

It listens on 127.0.0.1 (HTTP/1.1, keep-alive, bodies with Content-Length only: chunked request
bodies get 411). With ``--port 0`` a free port is bound; once the server listens, the port is
written to ``--port-file`` (atomically) or printed as ``PORT <n>`` on stdout.

Endpoints
    POST /v1/chat/completions
    POST /openai/deployments/{deployment}/chat/completions?api-version=...   (Azure; 404 without
         api-version, as Azure does)
    GET  /v1/models
    POST /tokenize, /extras/tokenize   {"content"|"prompt": "..."} -> {"tokens": [...], "count": n}
    POST /detokenize, /extras/detokenize   {"tokens": [...]} -> {"text": "..."} ("0"/"1" only)
    GET  /health
    POST /_admin/script   {"responses": [spec, ...]}   append to the FIFO of scripted answers
    GET  /_admin/config, POST /_admin/config {...}     read / change the settings at run time
    POST /_admin/outage   {"seconds": N, "mode": "refuse"|"503", "after": S}: from S seconds on,
                          for N seconds, close the port (connections refused, open ones
                          dropped) or answer every chat request 503
    POST /_admin/reset    queue, stats, rate windows and settings back to the command line
    GET  /_admin/stats

Settings beyond the command line (``POST /_admin/config``): ``bucket_rpm`` / ``bucket_burst`` /
``bucket_headers`` (a provider-style token bucket answering 429 with ``Retry-After`` only, or
with ``x-ratelimit-*-requests`` too), ``storm`` ({"every": M, "duration": N, "retry_after": R}:
429 for N s every M s), ``hang_rate`` (a fraction of requests never answered),
``prefix_cache_block`` (a provider-style prompt prefix cache, below; 0 turns it off). Stats count
``duplicates_in_flight``: chat requests whose exact body was already being answered.

Prefix cache (``prefix_cache_block: 256``): a request's messages are serialized in order, roles
included; its cached part is its longest prefix of whole blocks that an earlier, answered request
sent (a set of hashes of block-aligned prefixes, bounded; the blocks of a request count once its
2xx answer is sent, as a provider caches what it has computed). The answer's
``usage.prompt_tokens_details.cached_tokens`` reports it (prompt tokens in proportion to the
characters), and stats count ``prompt_chars`` and ``cached_chars`` over the answered requests.

A chat request is answered by the first of:
    1. 401 when ``require_api_key`` is set and neither ``Authorization: Bearer <key>`` nor
       ``api-key: <key>`` matches;
    2. 400 when the body is not a JSON object with a ``messages`` list;
    3. 429 when over ``rpm`` / ``tpm`` (sliding 60 s windows; tokens = prompt estimate +
       ``max_tokens``), with ``Retry-After`` (whole seconds until enough frees, at least 1).
       Neither 1 nor 3 consumes a scripted answer, and both answer at once (no latency);
    4. the next scripted answer (arrival order);
    5. a random fault: ``fault_rate`` {status: fraction}, drawn from a ``Random(seed)``;
    6. the first rule whose ``match`` substring occurs in the request body (re-serialized with
       ``json.dumps(..., ensure_ascii=False)``, or as sent);
    7. for a ``sftlabel generate`` request (its prompt names ``sftlabel-generate/v1``): a valid
       ShareGPT conversation for the scenario of its last user message, in its mode;
    8. the default reply: ``default_content``, or "1" with logprobs for a ``"logprobs": true``
       request with ``max_tokens`` (or ``max_completion_tokens``) 1 (a ``logit_bias`` >= 50 on
       the id of one of "0"/"1" alone makes that label the answer).
When ``rpm`` / ``tpm`` is set, every chat response carries ``x-ratelimit-{limit,remaining,reset}-
{requests,tokens}`` headers.

A response spec (a scripted answer or a rule's ``response``) may have:
    content        reply text (other JSON values are serialized); the error message when status
                   is not 2xx
    code           the error code when status is not 2xx (e.g. "content_filter")
    status         HTTP status (200)
    headers        extra headers, e.g. {"Retry-After": "2"} or {"retry-after-ms": "300"}
    body           raw body sent as is (a string; truncated JSON, HTML, ...)
    delay          seconds before answering, instead of ``latency`` (large: an answer that never
                   comes; the wait ends early when the client goes away)
    close          true or "reset": reset the connection (RST) instead of answering; "fin":
                   close it cleanly without answering
    logprobs       put into choices[0].logprobs
    usage          fields overriding the estimated usage
    finish_reason  ("stop", or "tool_calls" when tool_calls is given)
    tool_calls     put into the message (content is then null unless given)
Anything missing falls back to the default reply, so ``{"delay": 3}`` is a slow default answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import math
import os
import random
import re
import signal
import socket
import struct
import time
import traceback
import zlib
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

try:  # run as a script (tests/ is on sys.path) or imported as tests.fake_llm_server
    from fake_batches import Batches
except ImportError:  # pragma: no cover
    from tests.fake_batches import Batches

HOST = "127.0.0.1"
WINDOW = 60.0  # seconds of the rpm / tpm sliding windows
RECENT = 100  # requests kept in stats["recent"]
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
PREFIX_CACHE_ENTRIES = 1_000_000  # block hashes kept by the prefix cache (oldest dropped)
POLL = 0.1  # how often a long delay checks whether the client is still there
DEFAULT_CONTENT = '{"ok": true}'
API_KEY_ENV = "FAKE_LLM_REQUIRE_API_KEY"
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie"}
)
SECRET_PARAMS = frozenset({"api-key", "api_key", "key", "access_token", "token"})
SPEC_KEYS = frozenset(
    {
        "content",
        "status",
        "headers",
        "body",
        "delay",
        "close",
        "logprobs",
        "usage",
        "finish_reason",
        "tool_calls",
        "code",
    }
)
CHAT_PATH = "/v1/chat/completions"
AZURE_CHAT = re.compile(r"/openai/deployments/(?P<deployment>[^/]+)/chat/completions")
TOKENIZE_PATHS = frozenset({"/tokenize", "/extras/tokenize"})
DETOKENIZE_PATHS = frozenset({"/detokenize", "/extras/detokenize"})
# One token per digit, letter run, whitespace run or other character.
TOKEN_PATTERN = re.compile(r"\d|[^\W\d]+|\s+|[^\w\s]")
SPECIAL_TOKENS = {"0": 32, "1": 33}  # as in SmolLM2's tokenizer
ONE_TOKEN_LOGPROBS: dict[str, Any] = {
    "content": [
        {
            "token": "1",
            "logprob": -0.2,
            "top_logprobs": [{"token": "1", "logprob": -0.2}, {"token": "0", "logprob": -1.7}],
        }
    ]
}

JSONObject = dict[str, Any]


GENERATE_MARKER = "sftlabel-generate/v1"  # as in sftlabel/generation/_prompts.py


def generated_conversation(payload: JSONObject) -> str:
    """The answer to a `sftlabel generate` request: a valid ShareGPT conversation for the
    scenario JSON of the last user message, in its mode (single, multi-turn, agentic)."""
    scenario = json.loads(_text_of(payload["messages"][-1].get("content")))
    query = scenario["query"]
    turns: list[JSONObject] = [{"from": "human", "value": query}]
    tools = []
    if scenario["mode"] == "agentic":
        tools = scenario.get("tools") or [{"name": "run_shell", "parameters": {}}]
        for number in range(scenario.get("min_tool_calls", 1)):
            name = tools[number % len(tools)]["name"]
            call = {"name": name, "arguments": {"step": number + 1}}
            turns += [
                {"from": "function_call", "value": json.dumps(call)},
                {"from": "observation", "value": f"result {number + 1} of {name}"},
            ]
    turns.append({"from": "gpt", "value": f"An answer to: {query}"})
    follow_ups = scenario.get("follow_ups", [])
    for number in range(1, scenario.get("user_turns", 1)):
        asked = follow_ups[number - 1] if number <= len(follow_ups) else f"follow-up {number}"
        turns += [{"from": "human", "value": asked}, {"from": "gpt", "value": f"Re: {asked}"}]
    answer: JSONObject = {"conversations": turns}
    if tools:
        answer["tools"] = tools
    return json.dumps(answer)


def _one_token_answer(payload: JSONObject) -> tuple[str, JSONObject]:
    """The default one-token answer: "1", unless a large ``logit_bias`` (>= 50) sits on one label
    token only, which then wins (logprobs reported after the bias, as OpenAI does)."""
    bias = payload.get("logit_bias")
    if isinstance(bias, dict):
        pieces = {str(token): piece for piece, token in SPECIAL_TOKENS.items()}
        strong = [
            pieces.get(str(k)) for k, v in bias.items() if isinstance(v, int | float) and v >= 50
        ]
        if len(strong) == 1 and strong[0] is not None:
            forced = strong[0]
            other = "0" if forced == "1" else "1"
            top = [{"token": forced, "logprob": -0.0001}, {"token": other, "logprob": -9.5}]
            return forced, {"content": [{"token": forced, "logprob": -0.0001, "top_logprobs": top}]}
    return "1", ONE_TOKEN_LOGPROBS


class HttpError(Exception):
    """Answer the request with this status and an OpenAI-style error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})
        self.close = close


# --- settings -------------------------------------------------------------------------------


class SettingError(Exception):
    """An invalid setting or response spec (answered with 400)."""


def parse_fault_rate(value: object) -> dict[int, float]:
    """``"429=0.1,500=0.05"`` or ``{"429": 0.1}`` -> ``{429: 0.1}``; fractions must sum to <= 1."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        pairs: list[tuple[object, object]] = []
        for item in value.split(","):
            code_text, sep, rate_text = item.partition("=")
            if not sep:
                raise SettingError(f"fault rate {item!r} is not STATUS=FRACTION")
            pairs.append((code_text.strip(), rate_text.strip()))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise SettingError("fault_rate must be 'STATUS=FRACTION,...' or an object")
    rates: dict[int, float] = {}
    for status, fraction in pairs:
        try:
            code = int(str(status))
            rate = float(str(fraction))
        except ValueError:
            raise SettingError(f"bad fault rate {status}={fraction}") from None
        if not 100 <= code <= 599 or not 0.0 <= rate <= 1.0:
            raise SettingError(f"bad fault rate {status}={fraction}")
        rates[code] = rate
    if sum(rates.values()) > 1.0 + 1e-9:
        raise SettingError("fault rates sum to more than 1")
    return rates


def _optional_limit(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
        raise SettingError(f"{name} must be a positive number or null")
    return int(value)


def _check_spec(spec: object, where: str) -> JSONObject:
    """A response spec, or SettingError naming what is wrong (typos in tests fail loudly)."""
    if not isinstance(spec, dict):
        raise SettingError(f"{where} must be an object")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise SettingError(
            f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(SPEC_KEYS)})"
        )
    status = spec.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise SettingError(f"{where}: status must be an HTTP status code")
    delay = spec.get("delay", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise SettingError(f"{where}: delay must be a number of seconds >= 0")
    if not isinstance(spec.get("headers", {}), dict):
        raise SettingError(f"{where}: headers must be an object")
    if spec.get("close", False) not in (True, False, "reset", "fin"):
        raise SettingError(f'{where}: close must be true, false, "reset" or "fin"')
    return spec


@dataclass
class Config:
    """The run-time settings; ``POST /_admin/config`` changes them, reset restores the CLI's."""

    latency: float = 0.0
    rpm: int | None = None
    tpm: int | None = None
    fault_rate: dict[int, float] = field(default_factory=dict)
    default_content: str = DEFAULT_CONTENT
    require_api_key: str | None = None
    rules: list[JSONObject] = field(default_factory=list)
    model: str = "fake-model"
    seed: int = 0
    bucket_rpm: int | None = None
    """A provider-style token bucket: bucket_rpm / 60 requests a second, bucket_burst seconds
    of them saved up; beyond it 429 with ``Retry-After`` only (whole seconds, at least 1)."""
    bucket_burst: float = 1.0
    bucket_headers: bool = False
    """Also send ``x-ratelimit-{limit,remaining,reset}-requests`` with the bucket."""
    storm: dict[str, float] | None = None
    """``{"every": M, "duration": N, "retry_after": R}``: 429 to every chat request for N s of
    every M s (from when it is set), with ``Retry-After: R``."""
    hang_rate: float = 0.0
    """Fraction of chat requests that never get an answer (drawn from the seeded Random)."""
    prefix_cache_block: int = 0
    """Characters per block of the prompt prefix cache (0: no cache)."""

    def updated(self, changes: Mapping[str, Any]) -> Config:
        """A copy with ``changes`` applied and validated (SettingError when invalid)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise SettingError(f"unknown config keys {sorted(unknown)} (known: {sorted(names)})")
        new = dataclasses.replace(self)
        for name, value in changes.items():
            match name:
                case "latency":
                    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                        raise SettingError("latency must be a number of seconds >= 0")
                    new.latency = float(value)
                case "rpm" | "tpm":
                    setattr(new, name, _optional_limit(name, value))
                case "fault_rate":
                    new.fault_rate = parse_fault_rate(value)
                case "default_content" | "model":
                    if not isinstance(value, str):
                        raise SettingError(f"{name} must be a string")
                    setattr(new, name, value)
                case "require_api_key":
                    if value is not None and (not isinstance(value, str) or not value):
                        raise SettingError("require_api_key must be a non-empty string or null")
                    new.require_api_key = value
                case "rules":
                    new.rules = _check_rules(value)
                case "seed":
                    if isinstance(value, bool) or not isinstance(value, int):
                        raise SettingError("seed must be an integer")
                    new.seed = value
                case "bucket_rpm":
                    new.bucket_rpm = _optional_limit(name, value)
                case "bucket_burst" | "hang_rate":
                    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                        raise SettingError(f"{name} must be a number >= 0")
                    setattr(new, name, float(value))
                case "bucket_headers":
                    if not isinstance(value, bool):
                        raise SettingError("bucket_headers must be true or false")
                    new.bucket_headers = value
                case "storm":
                    new.storm = _check_storm(value)
                case "prefix_cache_block":
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise SettingError("prefix_cache_block must be an integer >= 0")
                    new.prefix_cache_block = value
        return new

    def to_json(self) -> JSONObject:
        """The settings as JSON; the API key shows as true/false, never its value."""
        return {
            "latency": self.latency,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "fault_rate": {str(k): v for k, v in self.fault_rate.items()},
            "default_content": self.default_content,
            "require_api_key": self.require_api_key is not None,
            "rules": self.rules,
            "model": self.model,
            "seed": self.seed,
            "bucket_rpm": self.bucket_rpm,
            "bucket_burst": self.bucket_burst,
            "bucket_headers": self.bucket_headers,
            "storm": self.storm,
            "hang_rate": self.hang_rate,
            "prefix_cache_block": self.prefix_cache_block,
        }


def _check_storm(value: object) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not {"every", "duration"} <= set(value) <= {
        "every",
        "duration",
        "retry_after",
    }:
        raise SettingError('storm must be {"every": M, "duration": N, "retry_after": R} or null')
    storm = {k: float(v) for k, v in value.items()}
    if storm["every"] <= 0 or not 0 < storm["duration"] <= storm["every"]:
        raise SettingError("storm needs 0 < duration <= every")
    storm.setdefault("retry_after", 1.0)
    return storm


def _check_rules(value: object) -> list[JSONObject]:
    if not isinstance(value, list):
        raise SettingError("rules must be a list")
    for index, rule in enumerate(value):
        if not isinstance(rule, dict) or set(rule) != {"match", "response"}:
            raise SettingError(f'rules[{index}] must be {{"match": "...", "response": {{...}}}}')
        if not isinstance(rule["match"], str) or not rule["match"]:
            raise SettingError(f"rules[{index}].match must be a non-empty string")
        _check_spec(rule["response"], f"rules[{index}].response")
    return value


# --- pieces ---------------------------------------------------------------------------------


class SlidingWindow:
    """Amounts (requests or tokens) admitted during the last WINDOW seconds."""

    def __init__(self) -> None:
        self._events: deque[tuple[float, int]] = deque()
        self.used = 0

    def _expire(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - WINDOW:
            self.used -= self._events.popleft()[1]

    def wait(self, amount: int, limit: int, now: float) -> float:
        """Seconds until ``amount`` more fits under ``limit``: 0 when it fits now."""
        self._expire(now)
        excess = self.used + amount - limit
        if excess <= 0:
            return 0.0
        if amount > limit:
            return WINDOW  # never fits; tell the client to wait a whole window
        freed = 0
        for at, admitted in self._events:
            freed += admitted
            if freed >= excess:
                return at + WINDOW - now
        return WINDOW

    def add(self, amount: int, now: float) -> None:
        self._events.append((now, amount))
        self.used += amount

    def reset_in(self, now: float) -> float:
        """Seconds until the oldest admitted amount leaves the window (0 when empty)."""
        self._expire(now)
        return self._events[0][0] + WINDOW - now if self._events else 0.0


def format_duration(seconds: float) -> str:
    """OpenAI's style for ``x-ratelimit-reset-*``: ``"250ms"``, ``"12.5s"``, ``"1m0s"``."""
    millis = max(0, round(seconds * 1000))
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest = divmod(millis, 60_000)
    text = f"{rest / 1000:g}s"
    return f"{minutes}m{text}" if minutes else text


def fake_tokenize(text: str) -> list[int]:
    """Deterministic fake token ids: "0" -> 32, "1" -> 33, any other piece -> an id >= 1000."""
    return [
        SPECIAL_TOKENS.get(piece) or 1000 + zlib.crc32(piece.encode()) % 100_000
        for piece in TOKEN_PATTERN.findall(text)
    ]


def _text_of(content: object) -> str:
    """The text of a message's content: a string, or a list of parts with "text"."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def estimate_tokens(text_length: int) -> int:
    return max(1, text_length // 4)


def error_json(status: int, message: str, code: str | None = None) -> bytes:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    if status == 429:
        kind = "requests"
    error = {"message": message, "type": kind, "param": None, "code": code}
    return json.dumps({"error": error}).encode()


def _redact_headers(headers: Mapping[str, str]) -> dict[str, str | int]:
    """Header values, with every secret one replaced by its length."""
    return {
        name: len(value) if name in SECRET_HEADERS else value for name, value in headers.items()
    }


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: dict[str, str]
    version: str
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    _parsed: Any = field(default=None, repr=False)
    _error: str | None = field(default=None, repr=False)
    _done: bool = field(default=False, repr=False)

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection

    def try_json(self) -> Any:
        """The body parsed as JSON (once), or None."""
        if not self._done:
            self._done = True
            try:
                self._parsed = json.loads(self.body)
            except (ValueError, UnicodeDecodeError) as exc:
                self._error = str(exc)
        return self._parsed

    def json(self) -> Any:
        """The body parsed as JSON, or HttpError(400)."""
        parsed = self.try_json()
        if self._error is not None:
            raise HttpError(400, f"the request body is not valid JSON: {self._error}")
        return parsed


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    close: bool | str = False  # True/"reset": RST instead of answering; "fin": a clean close
    close_after: bool = False  # answer, then close the connection
    cache_blocks: list[bytes] = field(default_factory=list)  # prefix hashes, cached once sent

    @classmethod
    def json(cls, payload: object, status: int = 200, **kwargs: Any) -> Reply:
        return cls(status=status, body=json.dumps(payload).encode(), **kwargs)

    @classmethod
    def error(cls, exc: HttpError) -> Reply:
        return cls(
            status=exc.status,
            body=error_json(exc.status, exc.message, exc.code),
            headers=exc.headers,
            close_after=exc.close,
        )

    def encode(self, keep_alive: bool) -> bytes:
        reason = _phrase(self.status)
        headers = {
            "content-type": ("Content-Type", "application/json"),
            "server": ("Server", "fake-llm"),
        }
        for name, value in self.headers.items():
            headers[name.lower()] = (name, str(value))
        headers["content-length"] = ("Content-Length", str(len(self.body)))
        headers["connection"] = ("Connection", "keep-alive" if keep_alive else "close")
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers.values()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass
class Stats:
    requests: int = 0  # every request but the admin ones
    chat_requests: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0  # distinct connections that carried non-admin requests
    rate_limited: int = 0  # 429s from rpm / tpm
    faults: int = 0  # answers from fault_rate
    closed: int = 0  # connections closed instead of answering (spec "close")
    abandoned: int = 0  # clients gone before the answer was sent
    duplicates_in_flight: int = 0  # chat requests whose body was already being answered
    storm_429: int = 0  # 429s of a storm
    outage_503: int = 0  # 503s of an outage (mode 503)
    hung: int = 0  # requests drawn by hang_rate
    batch_lines: int = 0  # batch input lines answered (by the chat logic)
    prompt_chars: int = 0  # serialized prompt characters of answered chat requests
    cached_chars: int = 0  # the part of them served by the prefix cache
    recent: deque[JSONObject] = field(default_factory=lambda: deque(maxlen=RECENT))

    def to_json(self, script_remaining: int) -> JSONObject:
        return {
            "requests": self.requests,
            "chat_requests": self.chat_requests,
            "by_status": dict(self.by_status),
            "by_path": dict(self.by_path),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "connections": self.connections,
            "rate_limited": self.rate_limited,
            "faults": self.faults,
            "closed": self.closed,
            "abandoned": self.abandoned,
            "duplicates_in_flight": self.duplicates_in_flight,
            "storm_429": self.storm_429,
            "outage_503": self.outage_503,
            "hung": self.hung,
            "batch_lines": self.batch_lines,
            "prompt_chars": self.prompt_chars,
            "cached_chars": self.cached_chars,
            "script_remaining": script_remaining,
            "recent": list(self.recent),
        }


# --- the server -----------------------------------------------------------------------------


class FakeLLM:
    """Per-connection HTTP/1.1 loop plus the request handlers; all state lives on one loop."""

    def __init__(self, defaults: Config) -> None:
        self.defaults = defaults
        self.config = defaults
        self.random = random.Random(defaults.seed)
        self.script: deque[JSONObject] = deque()
        self.stats = Stats()
        self.request_window = SlidingWindow()
        self.token_window = SlidingWindow()
        self.connections: set[asyncio.Task[None]] = set()
        self.generation = 0  # bumped by reset(), so stats count the connections used since
        self._ids = 0
        self.bodies_in_flight: Counter[int] = Counter()
        self.bucket_tokens = 0.0
        self.bucket_at = time.monotonic()
        self.storm_start = time.monotonic()
        self.outage_until = 0.0  # mode 503: answer 503 from outage_from until then
        self.outage_from = 0.0
        self.listener: Listener | None = None  # set by serve(): closes the port for outages
        self.prefix_cache = PrefixCache()
        self.batches = Batches(self._batch_answer)

    # connections ------------------------------------------------------------------------

    async def handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        counted_in = -1  # the generation whose stats count this connection
        try:
            while True:
                try:
                    request = await self._read_request(reader, writer)
                except HttpError as exc:
                    writer.write(Reply.error(exc).encode(keep_alive=False))
                    await _lingering_close(reader, writer)
                    break
                if request is None:
                    break
                if counted_in != self.generation and not request.path.startswith("/_admin/"):
                    counted_in = self.generation
                    self.stats.connections += 1
                if not await self._respond(request, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self.connections.discard(task)
            writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Request | None:
        """The next request on the connection, None at its end, HttpError when malformed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the client closed the connection (between requests, or mid-head)
        except asyncio.LimitOverrunError:
            raise HttpError(431, "request headers too large", close=True) from None
        lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise HttpError(400, f"bad request line {lines[0]!r}", close=True) from None
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise HttpError(505, f"unsupported version {version}", close=True)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise HttpError(400, f"bad header line {line!r}", close=True)
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if "transfer-encoding" in headers:
            raise HttpError(411, "chunked request bodies are not supported", close=True)
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit():
            raise HttpError(400, f"bad Content-Length {length_text!r}", close=True)
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise HttpError(413, "request body too large", close=True)
        if length and headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await reader.readexactly(length) if length else b""
        parts = urlsplit(target)
        return Request(
            method=method,
            target=target,
            path=parts.path,
            query=dict(parse_qsl(parts.query)),
            version=version,
            headers=headers,
            body=body,
        )

    async def _respond(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must not be reused.

        Counts go to ``self.stats`` at the time (a reset may replace it while we wait)."""
        entry = None if request.path.startswith("/_admin/") else self._record(request)
        is_chat = entry is not None and self._is_chat(request.path)
        body_key = hash(request.body)
        if is_chat:
            if self.bodies_in_flight[body_key]:
                self.stats.duplicates_in_flight += 1
            self.bodies_in_flight[body_key] += 1
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        try:
            try:
                reply = self._dispatch(request)
            except HttpError as exc:
                reply = Reply.error(exc)
            except Exception as exc:  # a bug here: say so in the answer and on stderr
                traceback.print_exc()
                reply = Reply.error(HttpError(500, f"fake server error: {exc!r}"))
            if reply.delay > 0 and not await self._pause(reply.delay, reader, writer):
                if entry is not None:
                    self.stats.abandoned += 1
                    entry["status"] = "abandoned"
                return False
            if reply.close:
                if entry is not None:
                    self.stats.closed += 1
                    entry["status"] = "closed"
                _close_now(writer, reset=reply.close != "fin")
                return False
            keep_alive = request.keep_alive and not reply.close_after
            writer.write(reply.encode(keep_alive))
            if reply.cache_blocks and 200 <= reply.status < 300:
                self.prefix_cache.add(reply.cache_blocks)
            if entry is not None:
                self.stats.by_status[str(reply.status)] += 1
                entry["status"] = reply.status
            await writer.drain()
            return keep_alive
        finally:
            if is_chat:
                self.stats.in_flight -= 1
                self.bodies_in_flight[body_key] -= 1
                if not self.bodies_in_flight[body_key]:
                    del self.bodies_in_flight[body_key]

    async def _pause(
        self, seconds: float, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Sleep; False when the client went away meanwhile (long delays end early then)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            await asyncio.sleep(min(left, POLL))
            if reader.at_eof() or writer.is_closing():
                return False
        return True

    def _record(self, request: Request) -> JSONObject:
        """Count a (non-admin) request and keep it, secrets redacted, in stats["recent"]."""
        self.stats.requests += 1
        self.stats.by_path[request.path] += 1
        query = {
            name: len(value) if name.lower() in SECRET_PARAMS else value
            for name, value in request.query.items()
        }
        entry: JSONObject = {
            "time": time.time(),
            "method": request.method,
            "path": request.path,
            "query": query,
            "headers": _redact_headers(request.headers),
            "body": request.try_json(),
            "status": None,
        }
        self.stats.recent.append(entry)
        return entry

    # routing ----------------------------------------------------------------------------

    @staticmethod
    def _is_chat(path: str) -> bool:
        return path == CHAT_PATH or AZURE_CHAT.fullmatch(path) is not None

    def _dispatch(self, request: Request) -> Reply:
        path, method = request.path, request.method
        if path.startswith("/_admin/"):
            return self._admin(request)
        if path == CHAT_PATH:
            _require_method(request, "POST")
            return self._chat(request, deployment=None)
        if azure := AZURE_CHAT.fullmatch(path):
            _require_method(request, "POST")
            if "api-version" not in request.query:
                raise HttpError(404, "Resource not found (no api-version)", code="404")
            return self._chat(request, deployment=azure["deployment"])
        if path in TOKENIZE_PATHS:
            _require_method(request, "POST")
            return self._tokenize(request)
        if path in DETOKENIZE_PATHS:
            _require_method(request, "POST")
            return self._detokenize(request)
        if path == "/v1/models":
            _require_method(request, "GET")
            model = {"id": self.config.model, "object": "model", "created": 0, "owned_by": "fake"}
            return Reply.json({"object": "list", "data": [model]})
        if path == "/health" and method == "GET":
            return Reply.json({"status": "ok"})
        if path.startswith(("/v1/files", "/v1/batches", "/openai/files", "/openai/batches")):
            self._check_api_key(request, self.config)
            answer = self.batches.handle(method, path, request.query, request.headers, request.body)
            if answer is not None:
                return Reply(status=answer[0], body=answer[1])
        raise HttpError(404, f"no route for {method} {path}", code="not_found")

    def _admin(self, request: Request) -> Reply:
        match request.method, request.path:
            case "POST", "/_admin/script":
                payload = request.json()
                responses = payload.get("responses") if isinstance(payload, dict) else None
                if not isinstance(responses, list):
                    raise HttpError(400, 'expected {"responses": [...]}')
                try:
                    checked = [_check_spec(r, f"responses[{i}]") for i, r in enumerate(responses)]
                except SettingError as exc:
                    raise HttpError(400, str(exc)) from None
                self.script.extend(checked)
                return Reply.json({"queued": len(self.script)})
            case "POST", "/_admin/config":
                changes = request.json()
                if not isinstance(changes, dict):
                    raise HttpError(400, "expected a JSON object of settings")
                try:
                    new = self.config.updated(changes)
                except SettingError as exc:
                    raise HttpError(400, str(exc)) from None
                if "seed" in changes:
                    self.random.seed(new.seed)
                if "storm" in changes:
                    self.storm_start = time.monotonic()
                if "prefix_cache_block" in changes:
                    self.prefix_cache = PrefixCache()  # other blocks: start empty
                if "bucket_rpm" in changes or "bucket_burst" in changes:
                    rate = (new.bucket_rpm or 0) / 60.0
                    self.bucket_tokens = max(1.0, rate * new.bucket_burst)  # starts full
                    self.bucket_at = time.monotonic()
                self.config = new
                return Reply.json(new.to_json())
            case "GET", "/_admin/config":
                return Reply.json(self.config.to_json())
            case "POST", "/_admin/outage":
                payload = request.json()
                if not isinstance(payload, dict) or payload.get("mode", "refuse") not in (
                    "refuse",
                    "503",
                ):
                    raise HttpError(400, 'expected {"seconds": N, "mode": "refuse"|"503"}')
                seconds = float(payload.get("seconds", 0))
                after = float(payload.get("after", 0))
                if payload.get("mode", "refuse") == "503":
                    self.outage_until = time.monotonic() + after + seconds
                    self.outage_from = time.monotonic() + after
                elif self.listener is None:
                    raise HttpError(400, "this server cannot close its port")
                else:
                    self.listener.schedule_outage(max(after, 0.05), seconds)
                return Reply.json({"ok": True})
            case "POST", "/_admin/reset":
                self.reset()
                return Reply.json({"ok": True})
            case "POST", "/_admin/batch_plans":
                payload = request.json()
                plans = payload.get("plans") if isinstance(payload, dict) else None
                if not isinstance(plans, list) or not all(isinstance(p, dict) for p in plans):
                    raise HttpError(400, 'expected {"plans": [{...}, ...]}')
                return Reply.json({"queued": self.batches.add_plans(plans)})
            case "POST", "/_admin/batches/release":
                return Reply.json({"released": self.batches.release()})
            case "GET", "/_admin/batches":
                return Reply.json(self.batches.overview())
            case "GET", "/_admin/stats":
                return Reply.json(self.stats.to_json(len(self.script)))
        raise HttpError(404, f"no admin route for {request.method} {request.path}")

    def reset(self) -> None:
        in_flight = self.stats.in_flight
        self.config = self.defaults
        self.random.seed(self.defaults.seed)
        self.script.clear()
        self.stats = Stats(in_flight=in_flight, max_in_flight=in_flight)
        self.generation += 1
        self.request_window = SlidingWindow()
        self.token_window = SlidingWindow()
        self.bodies_in_flight = Counter({k: v for k, v in self.bodies_in_flight.items() if v})
        self.outage_until = 0.0
        self.prefix_cache = PrefixCache()
        self.batches.reset()

    # chat completions -------------------------------------------------------------------

    def _batch_answer(self, payload: JSONObject, deployment: str | None) -> tuple[int, bytes]:
        """A batch line answered as the chat endpoint would (no rate limits, no delay)."""
        self.stats.batch_lines += 1
        body = json.dumps(payload).encode()
        request = Request("POST", CHAT_PATH, CHAT_PATH, {}, "HTTP/1.1", {}, body)
        try:
            reply = self._chat(request, deployment, batch=True)
        except HttpError as exc:
            return exc.status, error_json(exc.status, exc.message, exc.code)
        if reply.close:
            return 500, error_json(500, "the server closed the connection", "server_error")
        return reply.status, reply.body

    def _chat(self, request: Request, deployment: str | None, *, batch: bool = False) -> Reply:
        config = self.config
        if not batch:
            self.stats.chat_requests += 1
            self._check_api_key(request, config)
        payload = request.json()
        if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
            raise HttpError(400, "the body must be a JSON object with a 'messages' list")
        prompt_chars = sum(
            len(_text_of(m.get("content"))) for m in payload["messages"] if isinstance(m, dict)
        )
        prompt_tokens = estimate_tokens(prompt_chars)
        max_tokens = payload.get("max_tokens", payload.get("max_completion_tokens"))
        budget = prompt_tokens + (max_tokens if isinstance(max_tokens, int) else 0)
        if batch:  # batch lines do not count against the online limits
            limit_headers: dict[str, str] = {}
        else:
            self._disturbances(config)
            limit_headers = {**self._admit(budget, config), **self._bucket(config)}
        if not batch and config.hang_rate and self.random.random() < config.hang_rate:
            self.stats.hung += 1
            return Reply(delay=3600.0)

        spec: JSONObject | None = None
        if self.script:
            spec = self.script.popleft()
        elif fault := self._draw_fault(config):
            self.stats.faults += 1
            return Reply(
                status=fault,
                body=error_json(fault, "injected fault", "fake_fault"),
                headers=limit_headers,
                delay=config.latency,
            )
        else:
            spec = self._match_rule(request, payload, config)
            if spec is None and GENERATE_MARKER in request.body.decode("utf-8", "replace"):
                spec = {"content": generated_conversation(payload)}
        model = payload.get("model") or deployment or config.model
        spec = spec or {}
        blocks: list[bytes] = []
        if config.prefix_cache_block and 200 <= spec.get("status", 200) < 300:
            text = serialize_prompt(payload["messages"])
            blocks, cached = self.prefix_cache.lookup(text, config.prefix_cache_block)
            self.stats.prompt_chars += len(text)
            self.stats.cached_chars += cached
            cached_tokens = round(prompt_tokens * cached / len(text)) if text else 0
            usage = {"prompt_tokens_details": {"cached_tokens": cached_tokens}}
            override = spec.get("usage")
            spec = {**spec, "usage": {**usage, **(override if isinstance(override, dict) else {})}}
        reply = self._render(spec, payload, str(model), prompt_tokens, config)
        reply.headers = {**limit_headers, **reply.headers}
        reply.cache_blocks = blocks
        return reply

    def _check_api_key(self, request: Request, config: Config) -> None:
        key = config.require_api_key
        if key is None:
            return
        bearer = request.headers.get("authorization", "")
        offered = [request.headers.get("api-key", "")]
        if bearer[:7].lower() == "bearer ":
            offered.append(bearer[7:].strip())
        if not any(hmac.compare_digest(o.encode(), key.encode()) for o in offered if o):
            raise HttpError(
                401,
                "Incorrect API key provided. You can find your API key in your account settings.",
                code="invalid_api_key",
            )

    def _admit(self, tokens: int, config: Config) -> dict[str, str]:
        """Rate-limit headers for an admitted request, or HttpError(429) when over a limit."""
        now = time.monotonic()
        waits: dict[str, float] = {}
        if config.rpm is not None:
            waits["requests"] = self.request_window.wait(1, config.rpm, now)
        if config.tpm is not None:
            waits["tokens"] = self.token_window.wait(tokens, config.tpm, now)
        over = {kind: wait for kind, wait in waits.items() if wait > 0}
        if not over:
            self.request_window.add(1, now)
            self.token_window.add(tokens, now)
        headers: dict[str, str] = {}
        for kind, limit, window in (
            ("requests", config.rpm, self.request_window),
            ("tokens", config.tpm, self.token_window),
        ):
            if limit is not None:
                headers[f"x-ratelimit-limit-{kind}"] = str(limit)
                headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, limit - window.used))
                headers[f"x-ratelimit-reset-{kind}"] = format_duration(window.reset_in(now))
        if over:
            self.stats.rate_limited += 1
            wait = max(over.values())
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
            kinds = " and ".join(over)
            raise HttpError(
                429,
                f"Rate limit reached for {kinds} per minute. Please try again in {wait:.1f}s.",
                code="rate_limit_exceeded",
                headers=headers,
            )
        return headers

    def _disturbances(self, config: Config) -> None:
        """An outage in mode 503, or a storm of 429s, answers before anything else."""
        now = time.monotonic()
        if self.outage_from <= now < self.outage_until:
            self.stats.outage_503 += 1
            raise HttpError(503, "The service is temporarily unavailable (outage)")
        storm = config.storm
        if storm is not None and (now - self.storm_start) % storm["every"] < storm["duration"]:
            self.stats.storm_429 += 1
            raise HttpError(
                429,
                "Too many requests (storm)",
                code="rate_limit_exceeded",
                headers={"Retry-After": f"{storm['retry_after']:g}"},
            )

    def _bucket(self, config: Config) -> dict[str, str]:
        """The provider-style token bucket: headers for an admitted request, else 429 with
        Retry-After only (or with x-ratelimit-* too when bucket_headers)."""
        if config.bucket_rpm is None:
            return {}
        rate = config.bucket_rpm / 60.0
        capacity = max(1.0, rate * config.bucket_burst)
        now = time.monotonic()
        self.bucket_tokens = min(capacity, self.bucket_tokens + (now - self.bucket_at) * rate)
        self.bucket_at = now
        admitted = self.bucket_tokens >= 1.0
        if admitted:
            self.bucket_tokens -= 1.0
        headers: dict[str, str] = {}
        if config.bucket_headers:
            headers = {
                "x-ratelimit-limit-requests": str(config.bucket_rpm),
                "x-ratelimit-remaining-requests": str(int(self.bucket_tokens)),
                "x-ratelimit-reset-requests": format_duration(
                    max(0.0, capacity - self.bucket_tokens) / rate
                ),
            }
        if admitted:
            return headers
        self.stats.rate_limited += 1
        wait = (1.0 - self.bucket_tokens) / rate
        raise HttpError(
            429,
            "Rate limit reached for requests. Please try again later.",
            code="rate_limit_exceeded",
            headers={**headers, "Retry-After": str(max(1, math.ceil(wait)))},
        )

    def _draw_fault(self, config: Config) -> int | None:
        if not config.fault_rate:
            return None
        draw = self.random.random()
        total = 0.0
        for status, rate in sorted(config.fault_rate.items()):
            total += rate
            if draw < total:
                return status
        return None

    @staticmethod
    def _match_rule(request: Request, payload: JSONObject, config: Config) -> JSONObject | None:
        if not config.rules:
            return None
        serialized = json.dumps(payload, ensure_ascii=False)
        raw = request.body.decode("utf-8", "replace")
        for rule in config.rules:
            if rule["match"] in serialized or rule["match"] in raw:
                response: JSONObject = rule["response"]
                return response
        return None

    def _render(
        self, spec: JSONObject, payload: JSONObject, model: str, prompt_tokens: int, config: Config
    ) -> Reply:
        status: int = spec.get("status", 200)
        headers = {str(name): str(value) for name, value in spec.get("headers", {}).items()}
        delay = float(spec.get("delay", config.latency))
        close: bool | str = spec.get("close", False)
        content = spec.get("content")
        if content is not None and not isinstance(content, str):
            content = json.dumps(content)
        if "body" in spec:
            raw = spec["body"]
            body = (raw if isinstance(raw, str) else json.dumps(raw)).encode()
        elif not 200 <= status < 300:
            message = content or f"{status} {_phrase(status)} (scripted)"
            body = error_json(status, message, code=str(spec.get("code", status)))
        else:
            completion = self._completion(spec, content, payload, model, prompt_tokens)
            body = json.dumps(completion).encode()
        return Reply(status=status, body=body, headers=headers, delay=delay, close=close)

    def _completion(
        self,
        spec: JSONObject,
        content: str | None,
        payload: JSONObject,
        model: str,
        prompt_tokens: int,
    ) -> JSONObject:
        tool_calls = spec.get("tool_calls")
        logprobs = spec.get("logprobs")
        if content is None and not tool_calls:
            one_token = payload.get("logprobs") is True and 1 in (
                payload.get("max_tokens"),
                payload.get("max_completion_tokens"),
            )
            if one_token:
                content, default = _one_token_answer(payload)
                logprobs = logprobs if "logprobs" in spec else default
            else:
                content = self.config.default_content
        message: JSONObject = {"role": "assistant", "content": content}
        completion_chars = len(content or "")
        if tool_calls:
            message["tool_calls"] = tool_calls
            completion_chars += len(json.dumps(tool_calls))
        completion_tokens = estimate_tokens(completion_chars)
        usage: JSONObject = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        override = spec.get("usage")
        if isinstance(override, dict):
            usage.update(override)
            if "total_tokens" not in override:
                usage["total_tokens"] = usage.get("prompt_tokens", 0) + usage.get(
                    "completion_tokens", 0
                )
        self._ids += 1
        finish_reason = spec.get("finish_reason", "tool_calls" if tool_calls else "stop")
        return {
            "id": f"chatcmpl-fake-{self._ids}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish_reason,
                    "logprobs": logprobs,
                }
            ],
            "usage": usage,
        }

    # tokenize ---------------------------------------------------------------------------

    def _tokenize(self, request: Request) -> Reply:
        payload = request.json()
        if not isinstance(payload, dict):
            raise HttpError(400, "expected a JSON object")
        text = payload.get("content", payload.get("prompt"))
        if text is None and isinstance(payload.get("messages"), list):
            text = "".join(
                _text_of(m.get("content")) for m in payload["messages"] if isinstance(m, dict)
            )
        if not isinstance(text, str):
            raise HttpError(400, 'expected {"content": "..."} or {"prompt": "..."}')
        tokens = fake_tokenize(text)
        return Reply.json({"tokens": tokens, "count": len(tokens), "max_model_len": 8192})

    def _detokenize(self, request: Request) -> Reply:
        payload = request.json()
        tokens = payload.get("tokens") if isinstance(payload, dict) else None
        if not isinstance(tokens, list):
            raise HttpError(400, 'expected {"tokens": [...]}')
        pieces = {token: piece for piece, token in SPECIAL_TOKENS.items()}
        return Reply.json({"text": "".join(pieces.get(t, "<unk>") for t in tokens)})


def serialize_prompt(messages: list[Any]) -> str:
    """The messages as the prefix cache sees them: in order, each as its role and its text."""
    return "".join(
        f"<|{m.get('role')}|>{_text_of(m.get('content'))}" for m in messages if isinstance(m, dict)
    )


class PrefixCache:
    """Hashes of block-aligned prompt prefixes (chained: a block's hash covers all before it)."""

    def __init__(self, entries: int = PREFIX_CACHE_ENTRIES) -> None:
        self.entries = entries
        self.known: dict[bytes, None] = {}

    def lookup(self, text: str, block: int) -> tuple[list[bytes], int]:
        """The prefix hashes of ``text``'s whole blocks, and how many characters of it are
        cached (its longest prefix of whole blocks already known)."""
        hashes: list[bytes] = []
        cached = 0
        previous = b""
        hit = True
        for start in range(0, len(text) - block + 1, block):
            digest = hashlib.blake2b(
                previous + text[start : start + block].encode("utf-8", "surrogatepass"),
                digest_size=16,
            ).digest()
            hashes.append(digest)
            previous = digest
            if hit and digest in self.known:
                cached = start + block
            else:
                hit = False
        return hashes, cached

    def add(self, hashes: list[bytes]) -> None:
        for digest in hashes:
            self.known[digest] = None
        while len(self.known) > self.entries:
            del self.known[next(iter(self.known))]


def _require_method(request: Request, method: str) -> None:
    if request.method != method:
        raise HttpError(
            405, f"{request.method} is not allowed on {request.path}", headers={"Allow": method}
        )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _lingering_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send what was written, then read and drop what the client still sends (a chunked body
    we refused, say) for a moment, so closing does not reset the connection before the client
    has read our answer."""
    await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            while await reader.read(65536):
                pass


def _close_now(writer: asyncio.StreamWriter, *, reset: bool) -> None:
    """Drop the connection without answering: an RST (linger 0) or a plain FIN."""
    sock = writer.get_extra_info("socket")
    if reset and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()


# --- process --------------------------------------------------------------------------------


def _write_port_file(path: Path, port: int) -> None:
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(f"{port}\n", encoding="ascii")
    partial.replace(path)  # atomic: a reader never sees half a number


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    """Stop when the process that started us is gone (no orphans after a crashed test run)."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            stop.set()
        await asyncio.sleep(1.0)


class Listener:
    """The listening socket, which an outage closes (connections refused) for a while."""

    def __init__(self, app: FakeLLM, host: str) -> None:
        self.app = app
        self.host = host
        self.server: asyncio.Server | None = None
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, port: int) -> None:
        self.server = await asyncio.start_server(
            self.app.handle_connection,
            self.host,
            port,
            backlog=1024,
            limit=MAX_HEADER_BYTES,
            reuse_address=True,
        )
        self.port = self.server.sockets[0].getsockname()[1]

    def schedule_outage(self, after: float, seconds: float) -> None:
        task = asyncio.get_running_loop().create_task(self._outage(after, seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _outage(self, after: float, seconds: float) -> None:
        await asyncio.sleep(after)
        if self.server is not None:
            self.server.close()
        for task in list(self.app.connections):
            task.cancel()  # open connections are dropped too
        await asyncio.sleep(seconds)
        await self.start(self.port)


async def serve(args: argparse.Namespace, config: Config) -> None:
    app = FakeLLM(config)
    listener = Listener(app, args.host)
    app.listener = listener
    await listener.start(args.port)
    port = listener.port
    if args.port_file:
        _write_port_file(Path(args.port_file), port)
    else:
        print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    watcher = asyncio.create_task(_watch_parent(args.parent_pid, stop)) if args.parent_pid else None
    await stop.wait()
    server = listener.server
    assert server is not None
    server.close()
    for task in list(app.connections):
        task.cancel()
    await asyncio.gather(*app.connections, return_exceptions=True)
    if watcher is not None:
        watcher.cancel()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), 2.0)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Config]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--rpm", type=int, help="requests per minute (sliding window)")
    parser.add_argument("--tpm", type=int, help="tokens per minute (prompt + max_tokens)")
    parser.add_argument("--fault-rate", default="", help="e.g. 429=0.1,500=0.05")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--default-content", default=DEFAULT_CONTENT)
    parser.add_argument(
        "--require-api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"answer 401 unless this key is sent (default: ${API_KEY_ENV})",
    )
    parser.add_argument("--parent-pid", type=int, help="exit when this parent process is gone")
    args = parser.parse_args(argv)
    try:
        config = Config().updated(
            {
                "latency": args.latency,
                "rpm": args.rpm,
                "tpm": args.tpm,
                "fault_rate": args.fault_rate,
                "seed": args.seed,
                "model": args.model,
                "default_content": args.default_content,
                "require_api_key": args.require_api_key or None,
            }
        )
    except SettingError as exc:
        parser.error(str(exc))
    return args, config


def main(argv: list[str] | None = None) -> None:
    args, config = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args, config))


if __name__ == "__main__":
    main()

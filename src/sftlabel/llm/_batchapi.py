"""The OpenAI-compatible Files and Batches endpoints, and the journal of a run's batches.

``BatchAPI`` speaks OpenAI's paths (``{base}/files``, ``{base}/batches``) and Azure's
(``{endpoint}/openai/files?api-version=...``, ``/openai/batches``). ``Journal`` is an
append-only, fsynced JSONL file: every batch is recorded *before* each step (prepared → uploaded
→ submitted → states → collected), so a process killed at any moment finds what it submitted
and never submits it twice.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec

from sftlabel.llm._config import ClientConfig
from sftlabel.llm._errors import AuthenticationError, LLMError
from sftlabel.llm._http import cut, describe_transport, error_detail

JOURNAL = "journal.ndjson"
TERMINAL = frozenset({"completed", "expired", "failed", "cancelled"})
OPENAI_MAX_REQUESTS = 50_000
AZURE_MAX_REQUESTS = 100_000
MAX_FILE_BYTES = 200_000_000
"""A batch input file's limits (OpenAI: 50,000 requests and 200 MB; Azure: 100,000)."""
ATTEMPTS = 6


class BatchAPIError(LLMError):
    """The Files/Batches endpoints refused or failed: the run stops, nothing is marked failed
    (a ``--resume`` continues with what the journal holds)."""

    exit_code = 3


class BatchRecord(msgspec.Struct, kw_only=True):
    """One batch of a run, as the journal knows it."""

    local: str
    file: str
    requests: int
    bytes: int = 0
    reserved: float = 0.0
    file_id: str | None = None
    batch_id: str | None = None
    status: str = "prepared"
    counts: dict[str, int] = {}
    entered: float = 0.0
    """Wall-clock time the batch entered ``status``."""
    collected: bool = False
    answered: int = 0
    failed: int = 0
    retried: int = 0
    errors: list[str] = []


class Journal:
    """``<dir>/journal.jsonl``: events folded into :class:`BatchRecord` by ``local`` id."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / JOURNAL
        self.run_id = ""
        self.records: dict[str, BatchRecord] = {}
        for event in self._events():
            self._fold(event)
        if not self.run_id:
            self.run_id = uuid.uuid4().hex[:16]
            self._append({"event": "run", "run_id": self.run_id})

    def _events(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        for line in self.path.read_bytes().splitlines():
            try:
                event = msgspec.json.decode(line)
            except msgspec.DecodeError:
                continue  # a line cut by a kill
            if isinstance(event, dict):
                yield event

    def _fold(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "run":
            self.run_id = str(event.get("run_id") or "")
            return
        local = str(event.get("local"))
        if kind == "prepared":
            self.records[local] = msgspec.convert(
                {k: v for k, v in event.items() if k != "event"}, BatchRecord
            )
            return
        record = self.records.get(local)
        if record is None:
            return
        for name in ("file_id", "batch_id", "status", "counts", "entered", "collected"):
            if name in event:
                setattr(record, name, event[name])
        for name in ("answered", "failed", "retried", "errors"):
            if name in event:
                setattr(record, name, event[name])

    def _append(self, event: dict[str, Any]) -> None:
        with self.path.open("ab") as out:
            out.write(msgspec.json.encode(event) + b"\n")
            out.flush()
            os.fsync(out.fileno())

    def record(self, local: str, **changes: Any) -> None:
        """Write an event for ``local`` (``prepared`` needs every field of the record)."""
        event = {"event": changes.pop("event", "update"), "local": local, **changes}
        self._append(event)
        self._fold(event)

    def next_local(self, prefix: str = "b") -> str:
        return f"{prefix}{len(self.records) + 1:05d}"

    def live(self) -> list[BatchRecord]:
        return [r for r in self.records.values() if not r.collected]


class BatchAPI:
    """Files and Batches calls for one endpoint (OpenAI-compatible or Azure OpenAI)."""

    def __init__(
        self, config: ClientConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self.azure = config.azure
        if self.azure:
            root = (config.azure_endpoint or config.base_url or "").rstrip("/")
            self.root = f"{root}/openai"
            self.query = f"?api-version={config.api_version}"
            self.endpoint = "/chat/completions"
        else:
            base, _, query = (config.base_url or "").partition("?")
            self.root = base.rstrip("/")
            self.query = f"?{query}" if query else ""
            self.endpoint = "/v1/chat/completions"
        self.http = httpx.AsyncClient(
            headers={**config.headers, **config.auth_headers()},
            timeout=httpx.Timeout(max(config.timeout, 300.0), connect=config.connect_timeout),
            follow_redirects=False,
            transport=transport,
        )

    @property
    def max_requests(self) -> int:
        return AZURE_MAX_REQUESTS if self.azure else OPENAI_MAX_REQUESTS

    def _url(self, path: str) -> str:
        return f"{self.root}/{path}{self.query}"

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call, retried on transport errors, 429 and 5xx; raises for other statuses."""
        last = ""
        for attempt in range(ATTEMPTS):
            try:
                response = await self.http.request(method, self._url(path), **kwargs)
            except httpx.TransportError as exc:
                last = describe_transport(exc)
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response
                text, code = error_detail(response.content)
                last = f"{status} {cut(text or response.reason_phrase)}"
                if status in (401, 402, 403):
                    raise AuthenticationError(
                        f"the batch endpoint refused the credentials: {last}", status=status
                    )
                if status != 429 and status < 500:
                    raise BatchAPIError(
                        f"{method} {_what(path)}: {last}" + (f" [{code}]" if code else ""),
                        status=status,
                    )
            await anyio.sleep(min(0.2 * 2**attempt, 10.0))
        raise BatchAPIError(f"{method} {_what(path)} failed {ATTEMPTS} times: {last}")

    async def upload(self, name: str, data: bytes) -> str:
        response = await self._call(
            "POST",
            "files",
            files={"file": (name, data, "application/jsonl")},
            data={"purpose": "batch"},
        )
        return str(response.json()["id"])

    async def create(self, file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        payload = {
            "input_file_id": file_id,
            "endpoint": self.endpoint,
            "completion_window": "24h",
            "metadata": metadata,
        }
        answer: dict[str, Any] = (await self._call("POST", "batches", json=payload)).json()
        return answer

    async def find(self, metadata: dict[str, str]) -> dict[str, Any] | None:
        """A batch created earlier with this metadata (a kill between create and journal)."""
        answer = (await self._call("GET", "batches", params={"limit": 100})).json()
        for batch in answer.get("data") or []:
            found = batch.get("metadata") or {}
            if all(found.get(k) == v for k, v in metadata.items()):
                return dict(batch)
        return None

    async def get(self, batch_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = (await self._call("GET", f"batches/{batch_id}")).json()
        return answer

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = (await self._call("POST", f"batches/{batch_id}/cancel")).json()
        return answer

    async def content(self, file_id: str) -> bytes:
        return (await self._call("GET", f"files/{file_id}/content")).content


def _what(path: str) -> str:
    return path.split("/", maxsplit=1)[0]


def now() -> float:
    return time.time()


class ExportAPI:
    """Batches for a self-hosted fleet (``vllm run-batch`` or any tool that reads and writes
    the OpenAI batch JSONL): "uploading" writes the request file into ``directory``, and a
    batch is completed once an output file holding its ``custom_id``s is imported."""

    offline = True

    def __init__(self, directory: Path, *, imports: list[Path] | None = None) -> None:
        self.directory = directory
        self.imports = list(imports or [])
        self.azure = False
        self.endpoint = "/v1/chat/completions"
        self.max_requests = OPENAI_MAX_REQUESTS
        self._ids: dict[Path, set[str]] = {}
        self._files: dict[str, Path] = {}  # batch id -> its request file

    async def aclose(self) -> None:
        return None

    def _custom_ids(self, path: Path) -> set[str]:
        if path not in self._ids:
            found: set[str] = set()
            for line in path.read_bytes().splitlines():
                try:
                    data = msgspec.json.decode(line)
                except msgspec.DecodeError:
                    continue
                if isinstance(data, dict) and data.get("custom_id") is not None:
                    found.add(str(data["custom_id"]))
            self._ids[path] = found
        return self._ids[path]

    async def upload(self, name: str, data: bytes) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / name
        target.write_bytes(data)
        return str(target.resolve())

    async def create(self, file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        return {"id": f"export:{file_id}", "status": "exported"}

    async def find(self, metadata: dict[str, str]) -> dict[str, Any] | None:
        return None

    async def get(self, batch_id: str) -> dict[str, Any]:
        requests = Path(batch_id.removeprefix("export:"))
        wanted = self._custom_ids(requests) if requests.exists() else set()
        for output in self.imports:
            if wanted & self._custom_ids(output):
                return {"id": batch_id, "status": "completed", "output_file_id": str(output)}
        return {"id": batch_id, "status": "exported"}

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        return {"id": batch_id, "status": "cancelled"}

    async def content(self, file_id: str) -> bytes:
        return Path(file_id).read_bytes()

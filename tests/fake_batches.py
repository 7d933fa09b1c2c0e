"""OpenAI / Azure OpenAI Files and Batches endpoints for the fake server (stdlib only).

Routes (Azure: the same under ``/openai/...`` with ``?api-version=``, 404 without it)::

    POST /v1/files                    multipart/form-data: purpose=batch, file=<jsonl>
    GET  /v1/files/{id}/content       the file's bytes
    POST /v1/batches                  {"input_file_id", "endpoint", "completion_window", "metadata"}
    GET  /v1/batches                  the batches, newest first ({"data": [...]})
    GET  /v1/batches/{id}
    POST /v1/batches/{id}/cancel

The state of a batch follows its *plan*, taken from the FIFO ``POST /_admin/batch_plans``
(``{"plans": [plan, ...]}``) when it is created, else the default plan (all durations 0,
outcome ``completed``). A plan may have::

    validating / in_progress / finalizing   seconds spent in each state (a large number: held
                                            until ``POST /_admin/batches/release``)
    outcome        completed | expired | failed | cancelled   (after finalizing, or after
                   in_progress for expired)
    done_fraction  for ``expired``: the share of lines (file order) answered before it expired;
                   the others go to the error file with code ``batch_expired``
    error_lines    [{"match": substring, "code": .., "message": ..}]: lines whose body contains
                   the substring go to the error file with that error
    errors         for ``failed``: the validation errors ({"code", "message"})

Lines are answered when the batch leaves ``in_progress``, each by the same logic as the chat
endpoint (scripted answers, faults, rules, the default answer; no rate limits), as
``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error": null}``: a
scripted ``{"status": 400}`` gives a line with ``"error": null`` and ``status_code`` 400.
``request_counts`` grow through ``in_progress`` and are final in ``finalizing``. Files larger
than ``max_requests`` lines (50,000; Azure 100,000) fail validation.

Admin: ``POST /_admin/batch_plans``, ``POST /_admin/batches/release`` (every held batch moves on
now: its remaining durations become 0), ``GET /_admin/batches`` (every batch with its lines).
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JSONObject = dict[str, Any]

OPENAI_LIMIT = 50_000
AZURE_LIMIT = 100_000
ROUTE = re.compile(
    r"/(?:v1|openai)/(?P<kind>files|batches)(?:/(?P<id>[^/]+))?(?:/(?P<action>content|cancel))?"
)
STATES = ("validating", "in_progress", "finalizing")
EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


class BatchError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Batch:
    id: str
    input_file_id: str
    endpoint: str
    metadata: JSONObject
    plan: JSONObject
    created: float
    lines: list[JSONObject]
    azure: bool
    status: str = "validating"
    entered: float = 0.0
    cancel_requested: bool = False
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    errors: list[JSONObject] = field(default_factory=list)
    times: JSONObject = field(default_factory=dict)

    def to_json(self) -> JSONObject:
        total = len(self.lines)
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created),
            **self.times,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "request_counts": {
                "total": total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        }


class Batches:
    """The files and batches of one fake server; ``answer(line_body, deployment)`` is the chat
    endpoint's logic, returning ``(status, body bytes)``."""

    def __init__(self, answer: Callable[[JSONObject, str | None], tuple[int, bytes]]) -> None:
        self.answer = answer
        self.files: dict[str, tuple[str, bytes]] = {}
        self.batches: dict[str, Batch] = {}
        self.plans: deque[JSONObject] = deque()
        self.created = 0
        self.lines_answered = 0
        self._ids = 0

    def reset(self) -> None:
        self.files.clear()
        self.batches.clear()
        self.plans.clear()
        self.created = 0
        self.lines_answered = 0

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self._ids:06d}"

    # admin --------------------------------------------------------------------------------

    def add_plans(self, plans: list[JSONObject]) -> int:
        self.plans.extend(plans)
        return len(self.plans)

    def release(self) -> int:
        count = 0
        for batch in self.batches.values():
            if batch.status in STATES or batch.status == "cancelling":
                batch.plan = {**batch.plan, **dict.fromkeys(STATES, 0)}
                count += 1
        return count

    def overview(self) -> JSONObject:
        for batch in self.batches.values():
            self._advance(batch)
        return {
            "created": self.created,
            "lines_answered": self.lines_answered,
            "batches": [
                {**b.to_json(), "custom_ids": [line.get("custom_id") for line in b.lines]}
                for b in self.batches.values()
            ],
        }

    # routes -------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes] | None:
        """The reply of a files/batches route, None when the path is not one."""
        match = ROUTE.fullmatch(path)
        if match is None:
            return None
        azure = path.startswith("/openai/")
        if azure and "api-version" not in query:
            return 404, _error(404, "Resource not found (no api-version)")
        try:
            return 200, json.dumps(self._route(method, match, headers, body, azure)).encode()
        except BatchError as exc:
            return exc.status, _error(exc.status, exc.message)
        except _Content as content:
            return 200, content.data

    def _route(
        self, method: str, match: re.Match[str], headers: dict[str, str], body: bytes, azure: bool
    ) -> JSONObject:
        kind, ident, action = match["kind"], match["id"], match["action"]
        if kind == "files":
            if method == "POST" and ident is None:
                return self._upload(headers, body)
            if method == "GET" and ident is not None and action == "content":
                if ident not in self.files:
                    raise BatchError(404, f"no file {ident}")
                raise _Content(self.files[ident][1])
            if method == "GET" and ident is not None and action is None:
                if ident not in self.files:
                    raise BatchError(404, f"no file {ident}")
                name, data = self.files[ident]
                return {"id": ident, "object": "file", "bytes": len(data), "filename": name}
            raise BatchError(405, f"{method} not allowed here")
        if method == "POST" and ident is None:
            return self._create(_json(body), azure)
        if method == "GET" and ident is None:
            for batch in self.batches.values():
                self._advance(batch)
            data = [b.to_json() for b in reversed(self.batches.values())]
            return {"object": "list", "data": data, "has_more": False}
        batch = self.batches.get(ident or "")
        if batch is None:
            raise BatchError(404, f"no batch {ident}")
        if method == "GET" and action is None:
            self._advance(batch)
            return batch.to_json()
        if method == "POST" and action == "cancel":
            self._advance(batch)
            if batch.status in STATES:
                batch.cancel_requested = True
                self._enter(batch, "cancelling")
            return batch.to_json()
        raise BatchError(405, f"{method} not allowed here")

    def _upload(self, headers: dict[str, str], body: bytes) -> JSONObject:
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise BatchError(400, "expected multipart/form-data")
        fields = _multipart(content_type, body)
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if purpose != "batch":
            raise BatchError(400, f"purpose must be 'batch', not {purpose!r}")
        if "file" not in fields:
            raise BatchError(400, "no file part")
        filename, data = fields["file"]
        ident = self._id("file")
        self.files[ident] = (filename or "upload.jsonl", data)
        return {"id": ident, "object": "file", "bytes": len(data), "purpose": "batch"}

    def _create(self, payload: Any, azure: bool) -> JSONObject:
        if not isinstance(payload, dict):
            raise BatchError(400, "expected a JSON object")
        file_id = str(payload.get("input_file_id"))
        if file_id not in self.files:
            raise BatchError(400, f"no file {file_id}")
        endpoint = str(payload.get("endpoint", ""))
        if endpoint not in ("/v1/chat/completions", "/chat/completions"):
            raise BatchError(400, f"unsupported endpoint {endpoint!r}")
        lines: list[JSONObject] = []
        errors: list[JSONObject] = []
        for number, raw in enumerate(self.files[file_id][1].splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                errors.append({"code": "invalid_json_line", "line": number, "message": "bad JSON"})
                continue
            lines.append(line)
        ids = [line.get("custom_id") for line in lines]
        if len(set(ids)) != len(ids):
            errors.append({"code": "duplicate_custom_id", "message": "custom_id must be unique"})
        limit = AZURE_LIMIT if azure else OPENAI_LIMIT
        if len(lines) > limit:
            errors.append({"code": "too_many_requests", "message": f"more than {limit} lines"})
        plan = self.plans.popleft() if self.plans else {}
        now = time.time()
        batch = Batch(
            id=self._id("batch"),
            input_file_id=file_id,
            endpoint=endpoint,
            metadata=payload.get("metadata") or {},
            plan=plan,
            created=now,
            lines=lines,
            azure=azure,
            entered=now,
        )
        if errors:
            batch.plan = {**plan, "outcome": "failed", "errors": errors}
        self.batches[batch.id] = batch
        self.created += 1
        self._advance(batch)
        return batch.to_json()

    # the state machine --------------------------------------------------------------------

    def _enter(self, batch: Batch, status: str) -> None:
        batch.status = status
        batch.entered = time.time()
        batch.times[f"{status}_at"] = int(batch.entered)

    def _advance(self, batch: Batch) -> None:
        plan = batch.plan
        outcome = str(plan.get("outcome", "completed"))
        while True:
            status = batch.status
            if status == "cancelling":
                self._finish(batch, "cancelled", answered=0)
                return
            if status not in STATES:
                return
            spent = time.time() - batch.entered
            if status == "in_progress":
                total = len(batch.lines)
                share = 1.0 if not plan.get("in_progress") else spent / float(plan["in_progress"])
                batch.completed = min(total, int(total * min(share, 1.0)))
            if spent < float(plan.get(status, 0)):
                return
            if status == "validating":
                if outcome == "failed":
                    batch.errors = list(plan.get("errors") or [{"code": "invalid", "message": "?"}])
                    self._enter(batch, "failed")
                    return
                self._enter(batch, "in_progress")
            elif status == "in_progress":
                if outcome == "expired":
                    share = float(plan.get("done_fraction", 0.0))
                    self._finish(batch, "expired", answered=round(len(batch.lines) * share))
                    return
                if outcome == "cancelled":
                    self._finish(batch, "cancelled", answered=0)
                    return
                self._answer(batch, len(batch.lines))
                self._enter(batch, "finalizing")
            else:
                self._enter(batch, "completed")
                return

    def _finish(self, batch: Batch, status: str, *, answered: int) -> None:
        if batch.output_file_id is None and batch.error_file_id is None:
            self._answer(batch, answered)
        self._enter(batch, status)

    def _answer(self, batch: Batch, count: int) -> None:
        """Answer the first ``count`` lines; the others go to the error file as expired."""
        rules = [r for r in batch.plan.get("error_lines") or [] if isinstance(r, dict)]
        output: list[bytes] = []
        failed: list[bytes] = []
        for position, line in enumerate(batch.lines):
            custom_id = line.get("custom_id")
            body = line.get("body") if isinstance(line.get("body"), dict) else {}
            text = json.dumps(body, ensure_ascii=False)
            rule = next((r for r in rules if str(r.get("match", "")) in text), None)
            ident = f"batch_req_{batch.id}_{position}"
            if position >= count or rule is not None:
                error = EXPIRED if rule is None else {k: rule.get(k) for k in ("code", "message")}
                record = {"id": ident, "custom_id": custom_id, "response": None, "error": error}
                failed.append(json.dumps(record).encode())
                continue
            deployment = str(body.get("model")) if batch.azure else None
            status, answer = self.answer(body, deployment)
            self.lines_answered += 1
            try:
                parsed: Any = json.loads(answer)
            except ValueError:
                parsed = answer.decode("utf-8", "replace")
            record = {
                "id": ident,
                "custom_id": custom_id,
                "response": {"status_code": status, "request_id": ident, "body": parsed},
                "error": None,
            }
            output.append(json.dumps(record).encode())
        batch.completed = len(output)
        batch.failed = len(failed)
        if output:
            batch.output_file_id = self._id("file")
            self.files[batch.output_file_id] = ("output.jsonl", b"\n".join(output) + b"\n")
        if failed:
            batch.error_file_id = self._id("file")
            self.files[batch.error_file_id] = ("errors.jsonl", b"\n".join(failed) + b"\n")


class _Content(Exception):
    def __init__(self, data: bytes) -> None:
        self.data = data


DISPOSITION = re.compile(rb'name="(?P<name>[^"]*)"(?:; *filename="(?P<filename>[^"]*)")?')


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes). (The stdlib's
    email parser takes seconds for a few MB.)"""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise BatchError(400, "multipart/form-data without a boundary")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(b"--" + match[1].encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        found = DISPOSITION.search(head)
        if found is None:
            continue
        filename = found["filename"].decode() if found["filename"] is not None else None
        fields[found["name"].decode()] = (filename, data.removesuffix(b"\r\n"))
    return fields


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise BatchError(400, "the request body is not valid JSON") from None


def _error(status: int, message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()

"""The run engine's rules, through the library API and the CLI: resume compatibility, retry of
failures, path containment, signals, disk errors, progress (tests of issue "one run engine")."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import sftlabel
from sftlabel.model import Problem
from sftlabel.runs import Engine, ItemFailed, OutputError, RunControl, RunState, Written

from .conftest import jsonl, shared, write_jsonl
from .llm_server import FakeLLMServer
from .test_label_run import labeler_rules, records

SOFT = {"content": "1"}


def ids(path: Path) -> list[str]:
    return [r["id"] for r in jsonl(path.read_text("utf-8"))] if path.exists() else []


def every_file(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def label_options(server: FakeLLMServer, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "base_url": server.base_url,
        "api_key": "x",
        "cache": tmp_path / "cache.sqlite",
        "arbitration": False,
        "report": False,
        **extra,
    }


# --- the library API ------------------------------------------------------------------------


def test_label_through_the_library_api(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    llm_server.configure(rules=labeler_rules())
    data = shared("raw_samples.json")
    result = sftlabel.label(
        [str(data)], output=tmp_path / "out", **label_options(llm_server, tmp_path)
    )
    assert (result.labeled, result.failed, result.exit_code) == (215, 0, 0)
    assert result.status == "completed" and result.kind == "label"
    manifest = json.loads((tmp_path / "out" / "run.json").read_text("utf-8"))
    assert manifest["kind"] == "label"
    assert manifest["inputs"] == [str(data.resolve())]  # absolute, so --resume works anywhere
    assert manifest["prompt_version"] and manifest["taxonomy"]["hash"]


def test_softlabel_through_the_library_api(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    source = shared("copilot_raw/vscodedata_demo_20260101")
    shutil.copytree(source, raw)
    result = sftlabel.softlabel(
        [raw],
        model="gpt-4o-mini",
        base_url=llm_server.base_url,
        api_key="x",
        rationales=False,
        cache=tmp_path / "cache.sqlite",
    )
    assert (result.labeled, result.failed, result.exit_code) == (158, 0, 0)
    assert Path(result.path) == tmp_path / "LABELED_raw"
    manifest = json.loads((tmp_path / "LABELED_raw" / "run.json").read_text("utf-8"))
    assert manifest["kind"] == "softlabel" and manifest["options"]["rationales"] is False


def test_unknown_keyword_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(sftlabel.UsageError, match="unknown option"):
        sftlabel.label([tmp_path], model="m", concurency=4)


# --- paths stay inside the output ----------------------------------------------------------


def _layout(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    line = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
    write_jsonl(work / "a.jsonl", [{"id": "a", **line}])
    write_jsonl(work / "sub" / "b.jsonl", [{"id": "b", **line}])
    write_jsonl(work / "...json", [{"id": "dots", **line}])
    write_jsonl(tmp_path / "x.jsonl", [{"id": "x", **line}])
    return work


@pytest.mark.parametrize(
    ("inputs", "parts"),
    [
        # a directory walk skips hidden files such as `...json`; named, it is read
        ([".", "../x.jsonl"], {"work/a", "work/sub/b", "x"}),
        (["...json", "a.jsonl"], {"__", "a"}),
        (["."], {"a", "sub/b"}),
    ],
)
def test_label_writes_nothing_outside_the_run(
    cli,
    llm_server: FakeLLMServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    inputs: list[str],
    parts: set[str],
) -> None:
    llm_server.configure(rules=labeler_rules())
    work = _layout(tmp_path)
    monkeypatch.chdir(work)
    cache = tmp_path.parent / f"{tmp_path.name}-cache.sqlite"
    before = every_file(tmp_path)
    result = cli(
        "label",
        *inputs,
        "-o",
        "../runs/r",
        "--model",
        "m",
        "--base-url",
        llm_server.base_url,
        "--cache",
        cache,
        "--no-arbitration",
    )
    assert result.exit_code == 0, result.stderr
    run = tmp_path / "runs" / "r"
    written = every_file(tmp_path) - before
    assert written and all(p.is_relative_to(run) for p in written), written
    found = {p.parent.relative_to(run).as_posix() for p in run.rglob("labeled.jsonl")}
    assert found == parts


def test_softlabel_of_the_working_directory_stays_beside_it(
    cli, llm_server: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm_server.configure(default_content="1")
    work = _layout(tmp_path)
    monkeypatch.chdir(work)
    before = every_file(tmp_path)
    result = cli(
        "softlabel",
        ".",
        "..",
        "--model",
        "m",
        "--base-url",
        llm_server.base_url,
        "--no-rationales",
        "--no-cache",
        "-o",
        "../labels",
    )
    assert result.exit_code == 2  # the output would be inside the input `..`
    assert every_file(tmp_path) == before
    result = cli(
        "softlabel",
        ".",
        "--model",
        "m",
        "--base-url",
        llm_server.base_url,
        "--no-rationales",
        "--no-cache",
    )
    assert result.exit_code == 0, result.stderr
    written = every_file(tmp_path) - before
    assert all(p.is_relative_to(tmp_path / "LABELED_work") for p in written), written
    assert {p.relative_to(work).as_posix() for p in every_file(work)} == {
        "a.jsonl",
        "sub/b.jsonl",
        "...json",
    }  # the raw folder is never written


# --- resume ------------------------------------------------------------------------------------


def test_resume_refuses_options_that_change_answers(
    cli, llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    run = tmp_path / "run"
    data = records(3, tmp_path)
    opts = label_options(llm_server, tmp_path, output=run)
    assert sftlabel.label([data], **opts).exit_code == 0
    other = cli("label", "--resume", run, "--model", "other-model")
    assert other.exit_code == 2
    assert "--model other-model differs from this run's gpt-4o-mini" in other.stderr
    chars = cli("label", "--resume", run, "--max-chars", "100")
    assert chars.exit_code == 2 and "--max-chars" in chars.stderr and "60000" in chars.stderr
    same = cli("label", "--resume", run, "--model", "gpt-4o-mini", "--concurrency", "3")
    assert same.exit_code == 0, same.stderr
    manifest = json.loads((run / "run.json").read_text("utf-8"))
    assert manifest["rate"]["concurrency"] == 3  # rate options are kept unless given again
    again = cli("label", "--resume", run)
    assert again.exit_code == 0
    assert json.loads((run / "run.json").read_text("utf-8"))["rate"]["concurrency"] == 3


def test_softlabel_resume_refuses_another_strategy(
    cli, llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    data = write_jsonl(
        tmp_path / "chat.jsonl",
        [{"id": "c", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]}],
    )
    base = ("softlabel", data, "--model", "m", "--base-url", llm_server.base_url, "--no-cache")
    assert cli(*base, "--no-rationales").exit_code == 0
    refused = cli(*base, "--resume", "--strategy", "with_context")
    assert refused.exit_code == 2
    assert "--strategy with_context differs from this run's user_message_only" in refused.stderr
    top = cli(*base, "--resume", "--top-logprobs", "3")
    assert top.exit_code == 2 and "--top-logprobs" in top.stderr
    assert cli(*base, "--resume").exit_code == 0


def test_resume_from_another_working_directory(
    cli, llm_server: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm_server.configure(rules=labeler_rules())
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    records(4, tmp_path / "a")
    monkeypatch.chdir(tmp_path / "a")
    opts = label_options(llm_server, tmp_path, output="run", limit=2)
    assert sftlabel.label(["data.jsonl"], **opts).labeled == 2
    monkeypatch.chdir(tmp_path / "b")
    resumed = cli("label", "--resume", tmp_path / "a" / "run", "--limit", "4")
    assert resumed.exit_code == 0, resumed.stderr
    assert sorted(ids(tmp_path / "a" / "run" / "labeled.jsonl")) == ["r0", "r1", "r2", "r3"]


def test_failed_samples_are_retried_by_resume(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    filtered = {
        "match": "(1)",
        "response": {
            "status": 400,
            "body": json.dumps({"error": {"message": "content filter", "code": "content_filter"}}),
        },
    }
    llm_server.configure(rules=[filtered, *labeler_rules()])
    run = tmp_path / "run"
    data = records(6, tmp_path)
    opts = label_options(llm_server, tmp_path, output=run, json_mode="off")
    first = sftlabel.label([data], **opts)
    assert (first.labeled, first.failed, first.exit_code) == (5, 1, 1)
    assert "content filter" in jsonl((run / "failures.jsonl").read_text("utf-8"))[0]["error"]
    # the endpoint still rejects it: the resume tries again and the run still has one failure
    again = sftlabel.label(resume=run)
    assert (again.labeled, again.failed, again.retried, again.exit_code) == (5, 1, 1, 1)
    failure = jsonl((run / "failures.jsonl").read_text("utf-8"))
    assert len(failure) == 1 and failure[0]["attempts"] == 2
    assert [h["session"] for h in failure[0]["history"]] == [1]
    # the endpoint is fixed: one resume finishes the run
    llm_server.configure(rules=labeler_rules())
    fixed = sftlabel.label(resume=run)
    assert (fixed.labeled, fixed.failed, fixed.exit_code) == (6, 0, 0)
    assert ids(run / "failures.jsonl") == []
    assert sorted(ids(run / "labeled.jsonl")) == [f"r{i}" for i in range(6)]
    stats = json.loads((run / "stats.json").read_text("utf-8"))
    assert (stats["success"], stats["failed"]) == (6, 0)
    # --skip-failed keeps earlier failures
    llm_server.configure(rules=[filtered, *labeler_rules()])
    run2 = tmp_path / "run2"
    assert sftlabel.label([data], **{**opts, "output": run2}).failed == 1
    llm_server.configure(rules=labeler_rules())
    kept = sftlabel.label(resume=run2, retry_failed=False)
    assert (kept.failed, kept.retried, kept.exit_code) == (1, 0, 1)


def test_unreadable_input_records_make_the_exit_status_1(
    llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    data = records(2, tmp_path)
    with data.open("a", encoding="utf-8") as handle:
        handle.write("{broken\n")
    result = sftlabel.label([data], **label_options(llm_server, tmp_path, output=tmp_path / "r"))
    assert (result.labeled, result.unreadable, result.exit_code) == (2, 1, 1)


def test_a_missing_input_is_a_usage_error_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(sftlabel.UsageError, match="no such file") as caught:
        sftlabel.label([tmp_path / "nope.jsonl"], model="m", output=tmp_path / "run")
    assert caught.value.exit_code == 2
    assert not (tmp_path / "run").exists()


def test_a_failed_start_creates_no_run_directory(tmp_path: Path) -> None:
    data = records(1, tmp_path)
    (tmp_path / "cache-dir").mkdir()
    with pytest.raises(sftlabel.SftlabelError):
        # the cache path is a directory: the cache cannot be opened
        sftlabel.label(
            [data],
            model="m",
            base_url="http://127.0.0.1:9/v1",
            output=tmp_path / "run",
            cache=tmp_path / "cache-dir",
        )
    assert not (tmp_path / "run").exists()


# --- signals and progress ------------------------------------------------------------------


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "sftlabel", *map(str, args)]


def test_sigterm_ends_the_session_cleanly(tmp_path: Path) -> None:
    with FakeLLMServer(latency=0.2) as server:
        server.configure(rules=labeler_rules())
        run = tmp_path / "run"
        data = records(40, tmp_path)
        command = _cli(
            "label", data, "-o", run, "--model", "m", "--base-url", server.base_url,
            "--cache", tmp_path / "cache.sqlite", "--concurrency", "2", "--no-arbitration",
        )  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(ids(run / "labeled.jsonl")) < 3:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        stderr = err.decode()
        assert process.returncode == 3, stderr
        assert "interrupted by SIGTERM" in stderr
        assert f"sftlabel label --resume {run}" in stderr
        manifest = json.loads((run / "run.json").read_text("utf-8"))
        assert manifest["sessions"][-1]["status"] == "interrupted"
        done = len(ids(run / "labeled.jsonl"))
        assert 0 < done < 40 and f"{done} samples labeled" in stderr


def test_arbitrate_resumes_after_kill_9_with_every_sample_once(tmp_path: Path) -> None:
    unsure = {
        "intent": "learn",
        "language": ["python"],
        "domain": [],
        "task": ["code-explanation"],
        "difficulty": "beginner",
        "confidence": {
            "intent": 0.9,
            "language": 0.95,
            "domain": 0.8,
            "task": 0.9,
            "difficulty": 0.4,
        },
        "unmapped": [],
    }
    with FakeLLMServer(latency=0.1) as server:
        server.configure(rules=labeler_rules(call1=unsure))
        run = tmp_path / "run"
        data = records(30, tmp_path)
        opts = label_options(server, tmp_path, output=run, concurrency=10)
        assert sftlabel.label([data], **opts).labeled == 30
        target = tmp_path / "arb"
        base = ("arbitrate", run, "-o", target, "--base-url", server.base_url)
        process = subprocess.Popen(
            _cli(*base, "--no-cache", "--concurrency", "2"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(ids(target / "labeled.jsonl")) < 5:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert 0 < len(ids(target / "labeled.jsonl")) < 30
        finished = subprocess.run(
            _cli(*base, "--resume", "--no-cache"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert finished.returncode == 0, finished.stderr
        assert sorted(ids(target / "labeled.jsonl")) == sorted(f"r{i}" for i in range(30))
        manifest = json.loads((target / "run.json").read_text("utf-8"))
        assert manifest["kind"] == "arbitrate" and len(manifest["sessions"]) == 2


def test_the_plain_progress_line_comes_every_interval() -> None:
    from sftlabel.cli import _progress

    now = [0.0]
    printed: list[str] = []

    class Console:
        is_terminal = False

        def print(self, text: str, **_: Any) -> None:
            printed.append(text)

    original = _progress.stderr
    _progress.stderr = Console()  # type: ignore[assignment]
    try:
        with _progress.progress("labeling", interval=10, clock=lambda: now[0]) as update:
            state = RunState(total=100)
            for step in range(30):
                now[0] = step
                state.succeeded = step
                update(state)
    finally:
        _progress.stderr = original
    assert len(printed) == 2  # at 10 s and 20 s
    assert printed[0].startswith("labeling: 10/100 done") and "429s 0" in printed[0]


# --- the engine alone ---------------------------------------------------------------------


class _Task:
    kind = "test"
    noun = "item"

    def __init__(self, count: int, fail: Callable[[int], ItemFailed | None] | None = None) -> None:
        self.count = count
        self.fail = fail

    def items(self, on_problem: Callable[[Problem], None]) -> Iterator[int]:
        yield from range(self.count)

    def key(self, item: int) -> Hashable:
        return item

    async def process(self, item: int) -> Written:
        await anyio.sleep(0)
        failure = self.fail(item) if self.fail else None
        if failure is not None:
            raise failure
        return Written([("ok", item)])

    def failure(self, item: int, exc: ItemFailed) -> Written:
        return Written([("failed", item)])


class _Store:
    def __init__(self, error_after: int | None = None) -> None:
        self.records: list[tuple[str, Any]] = []
        self.error_after = error_after

    def done(self) -> tuple[set[Hashable], set[Hashable]]:
        return set(), set()

    def append(self, name: str, record: Any, part: str = "") -> None:
        if self.error_after is not None and len(self.records) >= self.error_after:
            raise OSError(errno.ENOSPC, "No space left on device", "/out/labeled.jsonl")
        self.records.append((name, record))

    def problem(self, problem: Problem) -> None:
        pass

    def close(self) -> None:
        pass


def _engine(task: _Task, store: _Store, **extra: Any) -> Engine[int]:
    return Engine(task=task, store=store, clients=[], concurrency=4, **extra)


def test_a_full_disk_stops_the_run_with_one_error_naming_the_path() -> None:
    store = _Store(error_after=3)
    expected = r"cannot write /out/labeled\.jsonl: No space left"
    with pytest.raises(OutputError, match=expected) as err:
        anyio.run(_engine(_Task(20), store).run)
    assert err.value.exit_code == 3


def test_systematic_rejections_stop_the_run_and_mark_nothing_failed() -> None:
    def reject(_: int) -> ItemFailed:
        return ItemFailed("rejected", "404 model not found", endpoint_fault=True)

    store = _Store()
    outcome = anyio.run(_engine(_Task(20, reject), store).run)
    assert outcome.status == "aborted" and "first 5 items" in (outcome.message or "")
    assert store.records == []


def test_content_rejections_are_the_items_own_failures() -> None:
    def reject(item: int) -> ItemFailed | None:
        return ItemFailed("rejected", "content filter") if item < 6 else None

    store = _Store()
    outcome = anyio.run(_engine(_Task(20, reject), store).run)
    assert outcome.status == "completed"
    assert sorted(r for n, r in store.records if n == "failed") == list(range(6))
    assert outcome.state.succeeded == 14 and outcome.state.failed == 6


def test_an_interrupted_run_says_so() -> None:
    control = RunControl()
    control.interrupt("interrupted by SIGTERM")
    outcome = anyio.run(_engine(_Task(5), _Store(), control=control).run)
    assert outcome.status == "interrupted" and outcome.message == "interrupted by SIGTERM"


def test_max_cost_is_a_hard_cap_over_every_session(
    llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    """Every request reserves its worst-case cost before it is sent: a run never spends more
    than the cap (plus the estimate error of the requests in flight), summed over sessions."""
    llm_server.configure(rules=labeler_rules())
    run = tmp_path / "run"
    data = records(60, tmp_path)
    opts = label_options(llm_server, tmp_path, output=run, concurrency=8, max_cost=0.01)
    first = sftlabel.label([data], **opts)
    assert first.status == "budget" and first.exit_code == 3
    slack = 0.002  # the estimate error of the requests in flight (8 at most)
    assert 0 < first.spent <= 0.01 + slack
    assert 0 < first.labeled < 60
    sent = llm_server.stats()["chat_requests"]
    # the same cap again: only what is left of it can be spent (a request or two at most)
    again = sftlabel.label(resume=run)
    assert again.status == "budget" and again.spent <= 0.01 + slack
    assert llm_server.stats()["chat_requests"] - sent <= 2
    # a larger cap goes on, and the total stays under it
    more = sftlabel.label(resume=run, max_cost=0.02)
    assert more.spent <= 0.02 + slack and more.labeled > first.labeled
    manifest = json.loads((run / "run.json").read_text("utf-8"))
    total = sum(s["cost"] for s in manifest["sessions"])
    stats = json.loads((run / "stats.json").read_text("utf-8"))
    assert round(total, 6) == more.spent == stats["cost_usd"]


def test_status_shows_where_a_run_stands(cli, llm_server: FakeLLMServer, tmp_path: Path) -> None:
    filtered = {
        "match": "(1)",
        "response": {"status": 400, "body": json.dumps({"error": {"message": "content filter"}})},
    }
    llm_server.configure(rules=[filtered, *labeler_rules()])
    run = tmp_path / "run"
    sftlabel.label([records(4, tmp_path)], **label_options(llm_server, tmp_path, output=run))
    shown = cli("status", run, "--json")
    assert shown.exit_code == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert (status["kind"], status["state"], status["labeled"], status["failed"]) == (
        "label",
        "completed",
        3,
        1,
    )
    assert status["failures_by_reason"] == {"rejected": 1} and len(status["sessions"]) == 1
    text = cli("status", run)
    assert "3 labeled, 1 failed" in text.stdout and "failed rejected: 1" in text.stdout
    assert cli("status", tmp_path).exit_code == 2  # not a run


def test_a_resume_with_nothing_to_do_leaves_the_outputs_as_they_are(
    llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    llm_server.configure(rules=labeler_rules())
    run = tmp_path / "run"
    first = sftlabel.label(
        [records(3, tmp_path)], **label_options(llm_server, tmp_path, output=run)
    )
    assert first.exit_code == 0
    before = {p: p.stat().st_mtime_ns for p in (run / "labeled.json", run / "stats.json")}
    again = sftlabel.label(resume=run)
    assert (again.status, again.labeled, again.skipped, again.exit_code) == ("completed", 3, 3, 0)
    assert {p: p.stat().st_mtime_ns for p in before} == before  # not finalized again
    manifest = json.loads((run / "run.json").read_text("utf-8"))
    assert [s["status"] for s in manifest["sessions"]] == ["completed", "completed"]


# --- cache-aware order: the slices of one conversation --------------------------------------


class _GroupedTask:
    """Items ``(group, n)``; ``group`` None for an item of its own. Logs starts and ends."""

    kind = "test"
    noun = "item"

    def __init__(self, items: list[tuple[str | None, int]], fail: frozenset[int] = frozenset()):
        self.all = items
        self.fail = fail
        self.log: list[tuple[str, tuple[str | None, int], int]] = []
        self.pulled = 0
        self.ended = 0
        self.in_flight = 0
        self.ahead = 0  # most items pulled and not finished

    def items(self, on_problem: Callable[[Problem], None]) -> Iterator[tuple[str | None, int]]:
        for item in self.all:
            self.pulled += 1
            yield item

    def key(self, item: tuple[str | None, int]) -> Hashable:
        return item[1]

    def group(self, item: tuple[str | None, int]) -> Hashable | None:
        return item[0]

    async def process(self, item: tuple[str | None, int]) -> Written:
        self.in_flight += 1
        self.ahead = max(self.ahead, self.pulled - self.ended)
        self.log.append(("start", item, self.in_flight))
        for _ in range(3):
            await anyio.sleep(0)
        self.in_flight -= 1
        self.ended += 1
        self.log.append(("end", item, self.in_flight))
        if item[1] in self.fail:
            raise ItemFailed("no-json", "bad answer")
        return Written([("ok", item[1])])

    def failure(self, item: tuple[str | None, int], exc: ItemFailed) -> Written:
        return Written([("failed", item[1])])


def _pyramids(*sizes: int, singles_between: int = 0) -> list[tuple[str | None, int]]:
    items: list[tuple[str | None, int]] = []
    for g, size in enumerate(sizes):
        items += [(f"g{g}", len(items) + k) for k in range(size)]
        items += [(None, len(items) + k) for k in range(singles_between)]
    return items


def _check_group_order(task: _GroupedTask, part: int) -> None:
    """Each group, in parts of ``part`` items (a longer group is split to bound the look-ahead),
    is led by its last item: nothing else of the part starts before that one has finished."""
    events = [(kind, item) for kind, item, _ in task.log]
    for name in {g for g, _ in task.all if g is not None}:
        members = [it for it in task.all if it[0] == name]
        for at in range(0, len(members), part):
            chunk = members[at : at + part]
            mine = [(kind, item) for kind, item in events if item in chunk]
            assert mine[0] == ("start", chunk[-1])
            assert mine[1] == ("end", chunk[-1])


def test_slices_of_a_conversation_wait_for_the_longest_one_and_all_are_handled() -> None:
    task = _GroupedTask(_pyramids(5, 1, 3, 7, singles_between=2), fail=frozenset({4}))
    store = _Store()
    outcome = anyio.run(Engine(task=task, store=store, clients=[], concurrency=4).run)
    assert outcome.status == "completed"
    handled = sorted(r for _, r in store.records)
    assert handled == [n for _, n in task.all]  # every item once, the failed leader too
    assert ("failed", 4) in store.records
    _check_group_order(task, part=16)
    first = next(item for kind, item, _ in task.log if kind == "start" and item[0] == "g0")
    assert first == ("g0", 4)  # the last slice of the first pyramid leads


def test_a_long_pyramid_holds_one_slot_while_it_waits_no_convoy() -> None:
    # one pyramid of 40 slices, then 200 single items: while a part's longest slice is answered,
    # the other slots are busy; afterwards the slices run side by side
    task = _GroupedTask(_pyramids(40) + [(None, 40 + n) for n in range(200)])
    store = _Store()
    anyio.run(Engine(task=task, store=store, clients=[], concurrency=4).run)
    assert len(store.records) == 240
    _check_group_order(task, part=16)  # look-ahead 16 x 4: parts of 16
    leader_end = next(i for i, (k, it, _) in enumerate(task.log) if (k, it) == ("end", ("g0", 15)))
    during = [f for kind, _, f in task.log[:leader_end] if kind == "start"]
    assert max(during) == 4  # the window stayed full while the pyramid waited
    slices_at_once = max(
        sum(1 for k, it, _ in task.log[: i + 1] if it[0] == "g0" and k == "start")
        - sum(1 for k, it, _ in task.log[: i + 1] if it[0] == "g0" and k == "end")
        for i in range(len(task.log))
    )
    assert slices_at_once == 4  # then the followers fill every slot
    assert task.ahead <= 16 * 4 + 4  # bounded look-ahead: constant memory


def test_grouped_runs_skip_what_is_done_and_stop_cleanly() -> None:
    class Done(_Store):
        def done(self) -> tuple[set[Hashable], set[Hashable]]:
            return {0, 4}, set()  # the first pyramid's longest slice was done before

    task = _GroupedTask(_pyramids(5, 3))
    store = Done()
    outcome = anyio.run(Engine(task=task, store=store, clients=[], concurrency=2).run)
    assert outcome.status == "completed" and outcome.state.skipped == 2
    assert sorted(r for _, r in store.records) == [1, 2, 3, 5, 6, 7]
    first = next(item for kind, item, _ in task.log if kind == "start")
    assert first == ("g0", 3)  # the longest slice still to do leads
    control = RunControl()
    control.interrupt()
    again = _GroupedTask(_pyramids(5, 3))
    outcome = anyio.run(
        Engine(task=again, store=_Store(), clients=[], concurrency=2, control=control).run
    )
    assert outcome.status == "interrupted" and again.log == []

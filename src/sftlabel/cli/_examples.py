"""Two or three examples per command, shown at the end of its ``--help`` (one place for all).

``epilog(name)`` is the Markdown a command passes to Typer as ``epilog`` (through its
``command_settings``); the commands are rendered with ``rich_markup_mode="markdown"``. Command lines
wrap at spaces in a narrow terminal.
"""

from __future__ import annotations

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "detect": [
        ("What is in a directory tree, per file", "sftlabel detect data/"),
        ("Every record of one file, as JSON", "sftlabel detect data/x.jsonl --records --json"),
    ],
    "slice": [
        ("One sample per assistant reply", "sftlabel slice data/ -o samples.jsonl"),
        (
            "A sparse subset of long pyramids, 1,000 random samples",
            "sftlabel slice data/ -o s.jsonl --sparse --shuffle --limit 1000",
        ),
    ],
    "label": [
        (
            "Label a directory with a local vLLM server",
            "sftlabel label data/ --model qwen2.5-7b --base-url http://127.0.0.1:8000/v1",
        ),
        (
            "Estimate tokens and cost first; send nothing",
            "sftlabel label data/ --model gpt-4o-mini --dry-run",
        ),
        (
            "Finish an interrupted run (failed samples are tried again) under a $20 cap",
            "sftlabel label --resume runs/20261201_101500_gpt-4o-mini --max-cost 20",
        ),
    ],
    "softlabel": [
        (
            "Soft labels of a Copilot dataset (written to `LABELED_<dataset>` beside it)",
            "sftlabel softlabel data/vscodedata_demo --model gpt-4o-mini",
        ),
        (
            "Estimate tokens and cost first",
            "sftlabel softlabel data/vscodedata_demo --model gpt-4o-mini --dry-run",
        ),
        (
            "Finish an interrupted run",
            "sftlabel softlabel data/vscodedata_demo --model gpt-4o-mini --resume",
        ),
        (
            "The job of the config file's [softlabel] table (`sftlabel init` writes one)",
            "sftlabel softlabel --no-rationales",
        ),
    ],
    "select": [
        (
            "Debugging samples of advanced or expert difficulty, in their input format",
            'sftlabel select runs/r1 --where "intent=debug" '
            '--where "difficulty in advanced,expert" -o debug.jsonl',
        ),
        (
            "A balanced mix: 1,000 samples per intent, as parquet",
            "sftlabel select runs/r1 --balance intent --per-value 1000 --seed 7 -o mix.parquet "
            "--format parquet",
        ),
        (
            "Count first (per expression and per value); write nothing",
            'sftlabel select runs/r1 --where "agentic has test-running" --dry-run',
        ),
    ],
    "arbitrate": [
        ("Re-ask every dimension below 0.65", "sftlabel arbitrate runs/r1 --model gpt-4o"),
        (
            "A stricter threshold, into a named run",
            "sftlabel arbitrate runs/r1 --threshold 0.8 -o runs/r1_arb",
        ),
        ("Finish an interrupted arbitration", "sftlabel arbitrate runs/r1 -o runs/r1_arb --resume"),
    ],
    "generate": [
        (
            "A gold set from scenarios, written by a strong model",
            "sftlabel generate scenarios.yaml --model gpt-4o -o gold/v1",
        ),
        ("Start from the example scenario file", "sftlabel generate --example > scenarios.yaml"),
        (
            "Estimate tokens and cost first",
            "sftlabel generate scenarios.yaml --model gpt-4o --dry-run",
        ),
        ("Finish an interrupted run", "sftlabel generate --resume gold/v1"),
        ("Label what it wrote", "sftlabel label gold/v1 --model claude-sonnet-4-5 -o gold/labels"),
    ],
    "status": [
        ("Where a run stands (running or finished, any kind)", "sftlabel status runs/r1"),
        ("The same as JSON, for scripts", "sftlabel status LABELED_dataset --json"),
    ],
    "init": [
        ("A commented sftlabel.toml in this folder", "sftlabel init"),
        ("The user-wide config", "sftlabel init ~/.config/sftlabel/config.toml"),
    ],
    "report": [
        ("Rebuild a run's dashboards and open them", "sftlabel report runs/r1 --open"),
        ("Unmapped tags with recommendations", "sftlabel report runs/r1 --unmapped"),
        ("Report a labeled file into another directory", "sftlabel report labeled.json -o out/"),
    ],
    "review": [
        (
            "200 low-confidence samples, stratified by intent",
            "sftlabel review runs/r1 -o r.xlsx --low-confidence --sample 200 --stratify intent",
        ),
        (
            "Where two runs disagree, side by side",
            "sftlabel review runs/r1 --disagreements-with runs/r2 -o d.csv",
        ),
        (
            "Apply the corrections into a new run",
            "sftlabel review runs/r1 --apply r.xlsx -o runs/r1_fixed",
        ),
    ],
    "compare": [
        ("Agreement of two runs in the terminal", "sftlabel compare runs/r1 runs/r2"),
        ("Also as Markdown and HTML reports", "sftlabel compare runs/r1 runs/r2 -o c.md -o c.html"),
        ("Soft labels against gold labels", "sftlabel compare LABELED_a LABELED_b --gold gold.csv"),
    ],
    "info": [
        ("Version, effective config (secrets redacted), taxonomy", "sftlabel info"),
        ("The same as JSON", "sftlabel info --json"),
    ],
    "test": [
        ("Check that an endpoint serves both jobs", "sftlabel test --model gpt-4o-mini"),
        (
            "With a message of your own",
            "sftlabel test --model gpt-4o-mini --message 'How do I sort a dict?'",
        ),
    ],
    "cache": [
        ("Size and age of the response cache", "sftlabel cache stats"),
        ("Drop answers older than 30 days", "sftlabel cache clear --older-than 30d"),
        ("The cached answers of one run's requests", "sftlabel cache show --run runs/r1"),
    ],
}


def epilog(command: str) -> str:
    """The examples of ``command`` as Markdown for Typer's ``epilog``: a list of what it does
    and the command line (in a code span, which wraps at spaces rather than being cut)."""
    items = [f"* {what}:  \n  `{line}`" for what, line in EXAMPLES[command]]
    return "**Examples**\n\n" + "\n".join(items)

"""Worked examples of the two labeling calls, part of the static prompt.

Besides two ordinary samples per call they hit the hard cases of LABELING.md: "best practices" is
not code-optimization (call 1); a CI workflow file is single-file and earns no concept, a list
used as a container is not data-structures, a thorough plain answer is agentic [] (call 2). A
test checks that every answer is valid for the built-in taxonomy.
"""

from __future__ import annotations

from typing import Any

Example = tuple[str, dict[str, Any]]

CALL1: list[Example] = [
    (
        "[user] How do I read a CSV file with pandas and skip the first two rows?\n"
        "[assistant] Use `pd.read_csv('data.csv', skiprows=2)` ...",
        {
            "intent": "learn",
            "language": ["python"],
            "domain": ["data-science"],
            "task": ["code-explanation"],
            "difficulty": "beginner",
            "confidence": {
                "intent": 0.9,
                "language": 0.98,
                "domain": 0.8,
                "task": 0.85,
                "difficulty": 0.9,
            },
            "unmapped": [],
        },
    ),
    (
        "[user] 我的 Go 服务在高并发下偶尔 panic: concurrent map writes，帮我修一下\n"
        "[assistant] 用 sync.RWMutex 保护 map ... (修改后的代码)",
        {
            "intent": "debug",
            "language": ["go"],
            "domain": ["web-backend"],
            "task": ["bug-fixing"],
            "difficulty": "intermediate",
            "confidence": {
                "intent": 0.95,
                "language": 0.99,
                "domain": 0.7,
                "task": 0.95,
                "difficulty": 0.75,
            },
            "unmapped": [],
        },
    ),
    (
        "[user] Can you clean up this Python function and make it follow best practices?\n"
        "[assistant] Here is a refactored version: smaller helpers, type hints, early returns "
        "... (the same behaviour)",
        {
            "intent": "build",
            "language": ["python"],
            "domain": [],
            "task": ["code-refactoring"],
            "difficulty": "intermediate",
            "confidence": {
                "intent": 0.85,
                "language": 0.99,
                "domain": 0.85,
                "task": 0.9,
                "difficulty": 0.7,
            },
            "unmapped": [],
        },
    ),
]

CALL2: list[Example] = [
    (
        "[user] Write a thread-safe LRU cache in Rust without external crates.\n"
        "[assistant] Here is an implementation with Mutex<HashMap> and a linked list ...",
        {
            "concept": ["data-structures", "concurrency", "ownership"],
            "agentic": [],
            "constraint": ["thread-safe", "no-external-dependencies"],
            "context": "single-file",
            "confidence": {"concept": 0.85, "agentic": 0.95, "constraint": 0.9, "context": 0.8},
            "unmapped": [],
        },
    ),
    (
        "[user] Explain step by step how Python threads differ from processes.\n"
        "[assistant] 1. What a process is ... 2. What a thread is ... 3. The GIL ... "
        "(a long, careful explanation with a short example; no tools)",
        {
            "concept": ["concurrency"],
            "agentic": [],
            "constraint": [],
            "context": "snippet",
            "confidence": {"concept": 0.9, "agentic": 0.98, "constraint": 0.95, "context": 0.8},
            "unmapped": [],
        },
    ),
    (
        "[user] Write a script that counts the ERROR lines of a log file per day.\n"
        "[assistant] ```python\nimport sys\nfrom collections import Counter\n...\n"
        "counts = Counter(line[:10] for line in lines if 'ERROR' in line)\n```",
        {
            "concept": [],
            "agentic": [],
            "constraint": [],
            "context": "single-file",
            "confidence": {"concept": 0.8, "agentic": 0.98, "constraint": 0.95, "context": 0.85},
            "unmapped": [],
        },
    ),
    (
        "[user] Write a GitHub Actions workflow that runs our pytest suite on every push.\n"
        "[assistant] ```yaml\nname: CI\non: [push]\njobs:\n  test: ...\n```",
        {
            "concept": [],
            "agentic": [],
            "constraint": [],
            "context": "single-file",
            "confidence": {"concept": 0.75, "agentic": 0.98, "constraint": 0.95, "context": 0.85},
            "unmapped": [],
        },
    ),
    (
        "[user] The tests fail after the upgrade, fix them.\n"
        "[assistant] Let me run the test suite first. [tool call] bash: pytest -x\n"
        "[tool] 2 failed ... [assistant] The fixture changed; I'll edit tests/conftest.py ...",
        {
            "concept": ["testing"],
            "agentic": [
                "bash-execution",
                "test-running",
                "file-operations",
                "iterative-refinement",
            ],
            "constraint": [],
            "context": "repository",
            "confidence": {"concept": 0.8, "agentic": 0.9, "constraint": 0.85, "context": 0.7},
            "unmapped": [{"dimension": "concept", "value": "dependency-upgrades"}],
        },
    ),
]

EXAMPLES: dict[int, list[Example]] = {1: CALL1, 2: CALL2}
"""The worked examples per labeling call (arbitration calls have none)."""

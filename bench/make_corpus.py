"""Build a large mixed JSONL corpus from the shared samples, for the slice benchmark.

Cycles through the ShareGPT, Pangu and Copilot samples (and an OpenAI-messages rendering of the
ShareGPT ones), giving every record a unique id, until the file reaches the requested size.

    python bench/make_corpus.py --size-mb 700 -o bench/data/corpus.jsonl
    python bench/make_corpus.py --size-mb 200 --layout array -o bench/data/corpus.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OPENAI_ROLES = {"human": "user", "gpt": "assistant", "tool": "tool", "system": "system"}


def templates() -> list[dict[str, object]]:
    sharegpt = json.loads((SHARED / "raw_samples.json").read_text("utf-8"))
    pangu = [
        json.loads(line)
        for line in (SHARED / "pangu_test_samples.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    ]
    copilot = [
        record
        for path in sorted((SHARED / "copilot_raw").rglob("*_turns.json"))
        for record in json.loads(path.read_text("utf-8"))
    ]
    openai = [
        {
            "id": f"oa-{record['id']}",
            "messages": [
                {"role": OPENAI_ROLES[m["from"]], "content": m["value"]}
                for m in record["conversations"]
            ],
        }
        for record in sharegpt
    ]
    mixed: list[dict[str, object]] = []
    for group in itertools.zip_longest(sharegpt, openai, pangu * 9, copilot * 5):
        mixed.extend(r for r in group if r is not None)
    return mixed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=float, default=700.0)
    parser.add_argument("-o", "--output", type=Path, default=Path("bench/data/corpus.jsonl"))
    parser.add_argument(
        "--layout",
        choices=["jsonl", "array"],
        default="jsonl",
        help="JSON Lines, or one JSON array (read by the streaming ijson path when large)",
    )
    args = parser.parse_args()
    target = int(args.size_mb * 1024 * 1024)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    records = templates()
    written = 0
    count = 0
    array = args.layout == "array"
    with args.output.open("w", encoding="utf-8") as out:
        if array:
            out.write("[\n")
        while True:
            for record in records:
                clone = dict(record)
                key = "conversationId" if "turnsArray" in clone else "id"
                clone[key] = f"{clone.get(key, 'rec')}-{count}"
                line = json.dumps(clone, ensure_ascii=False)
                line = ("" if not count or not array else ",\n") + line + ("" if array else "\n")
                out.write(line)
                written += len(line.encode("utf-8"))
                count += 1
                if written >= target:
                    if array:
                        out.write("\n]\n")
                    print(
                        f"wrote {count:,} records, {written / 1024 / 1024:.0f} MiB to {args.output}"
                    )
                    return


if __name__ == "__main__":
    main()

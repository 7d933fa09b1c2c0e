"""The YAML taxonomy: contents match the reference list, validation catches broken copies."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from sftlabel import TaxonomyError, load_taxonomy
from sftlabel.taxonomy import default_taxonomy_dir

from .conftest import ROOT, SHARED


def reference_rows() -> list[dict[str, str]]:
    path = SHARED / "reference" / "taxonomy_tags.tsv"
    if not path.exists():
        pytest.skip("shared reference list not available")
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_taxonomy_matches_the_reference_list_exactly() -> None:
    taxonomy = load_taxonomy()
    assert taxonomy.version == "3.1"
    rows = reference_rows()
    assert taxonomy.total == len(rows) == 221
    flat = [
        (cid, cat.select, tag.id, tag.name, tag.subcategory or "", "|".join(tag.aliases))
        for cid, cat in taxonomy.categories.items()
        for tag in cat.tags
    ]
    expected = [
        (r["category"], r["select"], r["id"], r["name"], r["subcategory"], r["aliases"])
        for r in rows
    ]
    assert flat == expected


def test_every_tag_has_a_description_and_an_example() -> None:
    for category in load_taxonomy().categories.values():
        for tag in category.tags:
            assert len(tag.description) > 20, tag.id
            assert tag.examples, tag.id


def test_resolve_maps_aliases_to_canonical_ids() -> None:
    taxonomy = load_taxonomy()
    assert taxonomy.resolve("language", "py") == "python"
    assert taxonomy.resolve("language", "C++") == "cpp"
    assert taxonomy.resolve("language", "golang") == "go"
    assert taxonomy.resolve("intent", "Troubleshoot") == "debug"
    assert taxonomy.resolve("agentic", "run tests") == "test-running"
    assert taxonomy.resolve("language", "cuda") is None
    assert taxonomy.resolve("nonexistent", "x") is None
    assert taxonomy.resolve("language", "make") == "makefile"
    assert taxonomy.resolve("intent", "make") == "build"


def test_summary_gives_counts_and_select_modes() -> None:
    summary = load_taxonomy().summary()
    assert summary["concept"]["subcategories"] == ["Fundamentals", "Advanced", "Engineering"]
    assert summary["intent"]["select"] == "single"
    assert summary["language"]["count"] == 75


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "tax"
    shutil.copytree(default_taxonomy_dir(), target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), "utf-8")


def test_a_copy_loads_from_a_custom_directory(copy: Path) -> None:
    edit(copy / "taxonomy.yaml", 'version: "3.1"', 'version: "3.1-custom"')
    assert load_taxonomy(copy).version == "3.1-custom"


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("tags/intent.yaml", "id: learn", "id: Learn_It", "'Learn_It' is not kebab-case"),
        ("tags/intent.yaml", "id: review", "id: debug", "tag id 'debug' is already used"),
        ("tags/domain.yaml", "id: automation", "id: python", "tag id 'python' is already used"),
        (
            "tags/intent.yaml",
            "aliases: [evaluate,",
            "aliases: [create, evaluate,",
            "alias 'create' is used by both",
        ),
        (
            "tags/intent.yaml",
            "aliases: [evaluate,",
            "aliases: [debug, evaluate,",
            "alias 'debug' of 'review' is the id",
        ),
        ("taxonomy.yaml", "count: 75", "count: 76", "has 75 tags but taxonomy.yaml declares 76"),
        ("taxonomy.yaml", "select: single", "select: several", "invalid enum value 'several'"),
        (
            "tags/concept.yaml",
            "subcategory: Fundamentals",
            "subcategory: Basics",
            "has subcategory 'Basics'",
        ),
        (
            "taxonomy.yaml",
            "  intent:\n    name: Intent",
            "  intent:\n    nme: Intent",
            "unknown field",
        ),
    ],
)
def test_validation_catches_broken_taxonomies(
    copy: Path, file: str, old: str, new: str, message: str
) -> None:
    edit(copy / file, old, new)
    with pytest.raises(TaxonomyError) as caught:
        load_taxonomy(copy)
    assert message.lower() in str(caught.value).lower()


def test_missing_directory_is_a_taxonomy_error(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="taxonomy directory not found"):
        load_taxonomy(tmp_path / "none")


def test_env_var_selects_the_taxonomy(cli, copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edit(copy / "taxonomy.yaml", 'version: "3.1"', 'version: "9.9"')
    monkeypatch.setenv("SFTLABEL_TAXONOMY", str(copy))
    result = cli("info", "--json")
    assert '"version":"9.9"' in result.stdout


def test_builtin_taxonomy_is_found_installed_or_in_a_checkout() -> None:
    import sftlabel

    package = Path(sftlabel.__file__).parent
    found = default_taxonomy_dir()
    if "site-packages" in str(package):  # `nox -s tests` installs the wheel
        assert found == package / "data" / "taxonomy"
    else:
        assert found == ROOT / "taxonomy"
    assert (found / "tags" / "language.yaml").is_file()


def test_consistency_rules_give_warnings() -> None:
    taxonomy = load_taxonomy()
    warnings = taxonomy.consistency_warnings(
        {
            "intent": "build",
            "task": ["bug-fixing"],
            "constraint": ["thread-safe"],
            "difficulty": "beginner",
        }
    )
    assert warnings == [
        "Intent=build but no feature-implementation in task",
        "Has constraints but difficulty=beginner",
    ]
    fine = {
        "intent": "build",
        "task": ["feature-implementation"],
        "difficulty": "beginner",
        "constraint": [],
    }
    assert taxonomy.consistency_warnings(fine) == []


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "when: {intent: [build]}",
            "when: {intent: [construct]}",
            "unknown tag 'construct' in 'intent'",
        ),
        ("when: {intent: [build]}", "when: {purpose: [build]}", "unknown category 'purpose'"),
        (
            "expect_not: {difficulty: [beginner]}",
            "expect_nott: {difficulty: [beginner]}",
            "unknown field",
        ),
    ],
)
def test_rules_are_validated(copy: Path, old: str, new: str, message: str) -> None:
    edit(copy / "taxonomy.yaml", old, new)
    with pytest.raises(TaxonomyError) as caught:
        load_taxonomy(copy)
    assert message.lower() in str(caught.value).lower()


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            "taxonomy.yaml",
            "(`planning`)",
            "(`planing`)",
            "decision rule 'agentic-behaviour-shown' of 'agentic' names unknown tag `planing`",
        ),
        (
            "taxonomy.yaml",
            "- id: language-none",
            "- id: language-evidence",
            "decision rule 'language-evidence' of 'language': the id is used twice",
        ),
        (
            "tags/concept.yaml",
            "confusable: [algorithms]",
            "confusable: [algorithmz]",
            "tag 'data-structures' lists unknown confusable tag 'algorithmz'",
        ),
        (
            "tags/concept.yaml",
            "confusable: [algorithms]",
            "confusable: [data-structures]",
            "tag 'data-structures' lists itself as confusable",
        ),
        (
            "tags/concept.yaml",
            "(that is `testing-task`)",
            "(that is `test-task`)",
            "tag 'testing' not_when names unknown tag `test-task`",
        ),
        ("taxonomy.yaml", "        text: >-", "        txt: >-", "unknown field"),
    ],
)
def test_decision_rules_and_tag_notes_may_only_name_existing_tags(
    copy: Path, file: str, old: str, new: str, message: str
) -> None:
    edit(copy / file, old, new)
    with pytest.raises(TaxonomyError) as caught:
        load_taxonomy(copy)
    assert message.lower() in str(caught.value).lower()


def test_every_dimension_has_decision_rules() -> None:
    taxonomy = load_taxonomy()
    for category in taxonomy.categories.values():
        assert category.decision_rules, category.id
        for rule in category.decision_rules:
            assert rule.text.strip()
    notes = [t for c in taxonomy.categories.values() for t in c.tags if t.use_when or t.not_when]
    assert len(notes) >= 30

"""The YAML taxonomy: categories (dimensions), their select mode and their tags.

Layout of a taxonomy directory (the default one ships inside the package)::

    taxonomy.yaml          version, categories with name / select / count / subcategories
    tags/<category>.yaml   the tags of one category: id, name, aliases, description, examples,
                           and the decision notes use_when / not_when / confusable

Files are decoded with msgspec into typed Structs (unknown keys are errors, so typos surface) and
validated as a whole: kebab-case ids unique across the taxonomy, aliases unique within their
category and never another tag's id, subcategories declared, declared counts matching, and the
decision rules and notes naming only tags that exist (a tag is named in their text as a
backticked id, `like-this`).
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Literal, TypeVar

import msgspec

from sftlabel.errors import TaxonomyError

Select = Literal["single", "multi"]
T = TypeVar("T")
_KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_NAMED = re.compile(r"`([^`\s]+)`")
"""A backticked word in a rule or note; a kebab-case one must name a tag or a category."""


class Tag(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    id: str
    name: str
    description: str = ""
    subcategory: str | None = None
    aliases: list[str] = []
    examples: list[str] = []
    use_when: str = ""
    """Decision note: when the tag applies (the threshold for a catch-all tag, a level anchor)."""
    not_when: str = ""
    """Decision note: what looks like the tag but does not count."""
    confusable: list[str] = []
    """Ids of the tags (of any category) this one must be told apart from."""


class DecisionRule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A rule that decides the hard cases of one dimension; it goes into the labeling prompt."""

    id: str
    """Kebab-case, unique across the taxonomy (tests and docs refer to it)."""
    text: str


class TagFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    category: str
    tags: list[Tag]


class CategorySpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    name: str
    select: Select
    description: str = ""
    count: int | None = None
    subcategories: list[str] = []
    call: Literal[1, 2] = 1
    """Which of the two labeling calls asks for this category."""
    decision_rules: list[DecisionRule] = []


class Rule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A cross-dimension consistency rule; a violated rule is a warning, never an error.

    ``when`` holds when every listed dimension has one of the listed tags (``"*"``: any tag at
    all). Then every dimension in ``expect`` must have one of its tags, and no dimension in
    ``expect_not`` may have one of its tags (``"*"``: must be empty).
    """

    message: str
    when: dict[str, list[str]]
    expect: dict[str, list[str]] = {}
    expect_not: dict[str, list[str]] = {}


class TaxonomySpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    version: str
    categories: dict[str, CategorySpec]
    name: str = ""
    description: str = ""
    rules: list[Rule] = []


class Category(msgspec.Struct, kw_only=True, frozen=True):
    """A dimension with its tags, ready to use."""

    id: str
    name: str
    select: Select
    description: str
    subcategories: list[str]
    tags: list[Tag]
    call: int = 1
    decision_rules: list[DecisionRule] = []

    @property
    def ids(self) -> list[str]:
        return [tag.id for tag in self.tags]


class Taxonomy:
    """A loaded, validated taxonomy. Use :func:`load_taxonomy` to get one."""

    def __init__(self, spec: TaxonomySpec, categories: dict[str, Category], path: Path) -> None:
        self.version = spec.version
        self.name = spec.name
        self.description = spec.description
        self.path = path
        self.categories = categories
        self.rules = list(spec.rules)
        self._lookup: dict[str, dict[str, str]] = {}
        for cid, category in categories.items():
            table: dict[str, str] = {}
            for tag in category.tags:
                for alias in tag.aliases:
                    table[alias.lower()] = tag.id
            for tag in category.tags:
                table[tag.id] = tag.id
            self._lookup[cid] = table

    def dimensions(self, call: int | None = None) -> list[str]:
        """The category ids (all, or those asked by labeling call 1 or 2), in taxonomy order."""
        return [cid for cid, c in self.categories.items() if call is None or c.call == call]

    @property
    def total(self) -> int:
        return sum(len(c.tags) for c in self.categories.values())

    def category(self, category: str) -> Category:
        try:
            return self.categories[category]
        except KeyError:
            known = ", ".join(self.categories)
            raise TaxonomyError(
                f"unknown taxonomy category {category!r}", hint=f"categories are: {known}"
            ) from None

    def resolve(self, category: str, value: str) -> str | None:
        """The canonical tag id for ``value`` (an id or alias, any case) in ``category``."""
        table = self._lookup.get(category)
        if table is None:
            return None
        key = value.strip().lower()
        return table.get(key) or table.get(key.replace(" ", "-").replace("_", "-"))

    def consistency_warnings(self, labels: dict[str, str | list[str] | None]) -> list[str]:
        """The messages of the rules that ``labels`` (dimension -> tag or tags) violate."""
        warnings: list[str] = []
        for rule in self.rules:
            if all(_has(labels.get(dim), tags) for dim, tags in rule.when.items()):
                broken = any(not _has(labels.get(dim), tags) for dim, tags in rule.expect.items())
                broken |= any(_has(labels.get(dim), tags) for dim, tags in rule.expect_not.items())
                if broken:
                    warnings.append(rule.message)
        return warnings

    def summary(self) -> dict[str, dict[str, object]]:
        """``{category: {"count": n, "select": "single"|"multi", ...}}``."""
        return {
            cid: {
                "name": c.name,
                "count": len(c.tags),
                "select": c.select,
                **({"subcategories": c.subcategories} if c.subcategories else {}),
            }
            for cid, c in self.categories.items()
        }


def _has(value: str | list[str] | None, tags: list[str]) -> bool:
    """Whether a dimension's value holds one of ``tags`` (``"*"``: any tag)."""
    values = [value] if isinstance(value, str) else list(value or [])
    if "*" in tags:
        return bool(values)
    return any(v in tags for v in values)


def default_taxonomy_dir() -> Path:
    """The built-in taxonomy: inside the wheel, or the repo's ``taxonomy/`` in a checkout."""
    packaged = Path(str(resources.files("sftlabel") / "data" / "taxonomy"))
    if (packaged / "taxonomy.yaml").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "taxonomy"
    if (checkout / "taxonomy.yaml").is_file():
        return checkout
    raise TaxonomyError(  # pragma: no cover - only a broken installation gets here
        "the built-in taxonomy is missing from this installation",
        hint="reinstall sftlabel, or pass --taxonomy DIR",
    )


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate the taxonomy in ``path`` (default: the built-in one). Cached per path."""
    directory = Path(path) if path is not None else default_taxonomy_dir()
    return _load(directory.resolve())


@functools.cache
def _load(directory: Path) -> Taxonomy:
    if not directory.is_dir():
        raise TaxonomyError(
            f"taxonomy directory not found: {directory}",
            hint="pass a directory holding taxonomy.yaml and tags/<category>.yaml",
        )
    spec = _decode(directory / "taxonomy.yaml", TaxonomySpec)
    problems: list[str] = []
    categories: dict[str, Category] = {}
    seen_ids: dict[str, str] = {}
    for cid, cat in spec.categories.items():
        file = directory / "tags" / f"{cid}.yaml"
        if not file.is_file():
            problems.append(f"tags/{cid}.yaml is missing (category {cid!r} is declared)")
            continue
        tag_file = _decode(file, TagFile)
        problems.extend(_check_category(cid, cat, tag_file, seen_ids))
        categories[cid] = Category(
            id=cid,
            name=cat.name,
            select=cat.select,
            description=cat.description,
            subcategories=list(cat.subcategories),
            tags=tag_file.tags,
            call=cat.call,
            decision_rules=list(cat.decision_rules),
        )
    problems.extend(_check_rules(spec.rules, categories))
    problems.extend(_check_guidance(categories))
    tags_dir = directory / "tags"
    if tags_dir.is_dir():
        for extra in sorted(tags_dir.glob("*.yaml")):
            if extra.stem not in spec.categories:
                problems.append(
                    f"tags/{extra.name} belongs to no category declared in taxonomy.yaml"
                )
    if not spec.categories:
        problems.append("taxonomy.yaml declares no categories")
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise TaxonomyError(
            f"invalid taxonomy in {directory}: {shown}{more}",
            hint="fix the YAML files, or drop --taxonomy / SFTLABEL_TAXONOMY for the built-in one",
        )
    return Taxonomy(spec, categories, directory)


def _decode(file: Path, kind: type[T]) -> T:
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise TaxonomyError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        return msgspec.yaml.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        raise TaxonomyError(
            f"{file}: {exc}", hint="see docs/taxonomy.md for the file layout"
        ) from None
    except msgspec.DecodeError as exc:
        raise TaxonomyError(f"{file}: not valid YAML: {exc}") from None


def _check_rules(rules: list[Rule], categories: dict[str, Category]) -> list[str]:
    problems: list[str] = []
    for number, rule in enumerate(rules, 1):
        parts = [*rule.when.items(), *rule.expect.items(), *rule.expect_not.items()]
        if not rule.when:
            problems.append(f"rule {number} ({rule.message!r}) has an empty 'when'")
        for dim, tags in parts:
            category = categories.get(dim)
            if category is None:
                problems.append(f"rule {number} ({rule.message!r}) names unknown category {dim!r}")
                continue
            known = set(category.ids) | {"*"}
            for tag in tags:
                if tag not in known:
                    problems.append(
                        f"rule {number} ({rule.message!r}) names unknown tag {tag!r} in {dim!r}"
                    )
    return problems


def _check_guidance(categories: dict[str, Category]) -> list[str]:
    """Decision rules and tag notes may only name tags (and categories) that exist."""
    known = {tag.id for c in categories.values() for tag in c.tags} | set(categories)
    problems: list[str] = []
    rule_ids: set[str] = set()

    def named(text: str, where: str) -> None:
        for word in _NAMED.findall(text):
            if _KEBAB.match(word) and word not in known:
                problems.append(f"{where} names unknown tag `{word}`")

    for cid, category in categories.items():
        for rule in category.decision_rules:
            where = f"decision rule {rule.id!r} of {cid!r}"
            if not _KEBAB.match(rule.id):
                problems.append(f"{where}: the id is not kebab-case")
            if rule.id in rule_ids:
                problems.append(f"{where}: the id is used twice")
            rule_ids.add(rule.id)
            if not rule.text.strip():
                problems.append(f"{where} is empty")
            named(rule.text, where)
        for tag in category.tags:
            where = f"tags/{cid}.yaml: tag {tag.id!r}"
            named(tag.use_when, f"{where} use_when")
            named(tag.not_when, f"{where} not_when")
            for other in tag.confusable:
                if other == tag.id:
                    problems.append(f"{where} lists itself as confusable")
                elif other not in known or other in categories:
                    problems.append(f"{where} lists unknown confusable tag {other!r}")
    return problems


def _check_category(
    cid: str, cat: CategorySpec, tag_file: TagFile, seen_ids: dict[str, str]
) -> list[str]:
    where = f"tags/{cid}.yaml"
    problems: list[str] = []
    if not _KEBAB.match(cid):
        problems.append(f"category id {cid!r} is not kebab-case")
    if tag_file.category != cid:
        problems.append(f"{where} says category {tag_file.category!r}, expected {cid!r}")
    if not tag_file.tags:
        problems.append(f"{where} has no tags")
    if cat.count is not None and cat.count != len(tag_file.tags):
        problems.append(
            f"{where} has {len(tag_file.tags)} tags but taxonomy.yaml declares {cat.count}"
        )
    ids = {tag.id for tag in tag_file.tags}
    aliases: dict[str, str] = {}
    for tag in tag_file.tags:
        if not _KEBAB.match(tag.id):
            problems.append(
                f"{where}: tag id {tag.id!r} is not kebab-case (lowercase letters, digits, hyphens)"
            )
        if tag.id in seen_ids:
            problems.append(
                f"{where}: tag id {tag.id!r} is already used in category {seen_ids[tag.id]!r}"
            )
        seen_ids[tag.id] = cid
        if cat.subcategories and tag.subcategory not in cat.subcategories:
            problems.append(
                f"{where}: tag {tag.id!r} has subcategory {tag.subcategory!r}; "
                f"expected one of {cat.subcategories}"
            )
        if not cat.subcategories and tag.subcategory is not None:
            problems.append(f"{where}: tag {tag.id!r} has a subcategory but {cid!r} declares none")
        for alias in tag.aliases:
            key = alias.lower()
            if not alias.strip() or any(ch.isspace() for ch in alias):
                problems.append(f"{where}: tag {tag.id!r} has an empty alias or one with spaces")
            if key in aliases and aliases[key] != tag.id:
                problems.append(
                    f"{where}: alias {alias!r} is used by both {aliases[key]!r} and {tag.id!r}"
                )
            if key in ids and key != tag.id:
                problems.append(f"{where}: alias {alias!r} of {tag.id!r} is the id of another tag")
            aliases[key] = tag.id
    return problems

"""Unmapped analysis: what to do with each out-of-pool value the labeler proposed.

For every ``(dimension, value)`` the recommendation is, in this order:

* ``ignore`` when the value already resolves to a tag of its dimension (an id or alias: the run
  predates the alias) or is the id of a tag of another dimension (asked in the wrong place);
* ``alias`` of an existing tag of the dimension when the value is close to it: a similarity
  ratio (rapidfuzz's ``fuzz.ratio``: the normalized Indel similarity, the measure
  :class:`difflib.SequenceMatcher` approximates, computed in C++) of at least
  :data:`ALIAS_RATIO` with the tag's id,
  name or one of its aliases (all normalized: lowercase, words split on ``-``, ``_`` and spaces),
  or, for a value with a dimension, when the tag's id appears whole among the value's words
  (``helm-deployment`` → ``deployment``: a narrower case of an existing tag). A value without a
  dimension (older runs) is compared with every dimension, by spelling only;
* ``add`` to the taxonomy when it is frequent: at least :data:`ADD_MIN_COUNT` samples and
  :data:`ADD_MIN_SHARE` of the samples;
* ``ignore`` otherwise (rare: the sample keeps its other tags).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz, process

from sftlabel.reports._aggregate import TaxonomySummary
from sftlabel.taxonomy import Taxonomy

ALIAS_RATIO = 0.85
"""Near-spellings only: on the baseline runs 0.75–0.8 already pairs unrelated tags
(``system-design``/``systems-programming``, ``technology-selection``/``tool-selection``)."""
ADD_MIN_COUNT = 3
ADD_MIN_SHARE = 0.002
"""0.2 % of the samples: at 10^6 samples a tag must be used 2,000 times to be proposed."""

Action = Literal["add", "alias", "ignore"]
_WORDS = re.compile(r"[\s_\-/]+")


@dataclass
class UnmappedFinding:
    dimension: str
    """``""`` when the labeler gave no dimension."""
    value: str
    count: int
    share: float
    """Share of the labeled samples."""
    examples: list[str]
    action: Action
    target: str | None
    """The tag (``dimension:id`` when it is in another dimension) the action refers to."""
    reason: str

    @property
    def recommendation(self) -> str:
        if self.action == "alias":
            return f"alias of {self.target}"
        if self.action == "add":
            return "add to the taxonomy"
        return "ignore"


def _normal(text: str) -> str:
    return " ".join(w for w in _WORDS.split(text.lower()) if w)


def analyse_unmapped(
    summary: TaxonomySummary, taxonomy: Taxonomy, *, limit: int | None = None
) -> list[UnmappedFinding]:
    """A recommendation for each unmapped value, most frequent first."""
    findings: list[UnmappedFinding] = []
    owners: dict[str, str] = {
        tag.id: cid for cid, category in taxonomy.categories.items() for tag in category.tags
    }
    samples = summary.samples or 1
    candidates: dict[str, _Candidates] = {}
    for (dim, value), count in summary.unmapped.most_common(limit):
        share = count / samples
        examples = summary.unmapped_examples.get((dim, value), [])
        action, target, reason = _recommend(
            taxonomy, owners, candidates, dim, value, count=count, share=share
        )
        findings.append(
            UnmappedFinding(
                dimension=dim,
                value=value,
                count=count,
                share=share,
                examples=list(examples),
                action=action,
                target=target,
                reason=reason,
            )
        )
    return findings


def _recommend(
    taxonomy: Taxonomy,
    owners: dict[str, str],
    candidates: dict[str, _Candidates],
    dim: str,
    value: str,
    *,
    count: int,
    share: float,
) -> tuple[Action, str | None, str]:
    qualified = dim not in taxonomy.categories
    dims = taxonomy.dimensions() if qualified else [dim]
    key = "" if qualified else dim
    if key not in candidates:
        candidates[key] = _Candidates(taxonomy, dims)
    for candidate in dims:
        resolved = taxonomy.resolve(candidate, value)
        if resolved is not None:
            where = f"{candidate}:{resolved}" if qualified else resolved
            return "ignore", where, f"already an id or alias of {where} (re-validate the labels)"
    slug = "-".join(_normal(value).split())
    if slug in owners and owners[slug] not in dims:
        where = f"{owners[slug]}:{slug}"
        return "ignore", where, f"a tag of another dimension ({where})"
    best = _closest(candidates[key], value, words_rule=not qualified)
    if best is not None:
        tag_dim, tag_id, why = best
        where = f"{tag_dim}:{tag_id}" if qualified else tag_id
        return "alias", where, why
    if count >= ADD_MIN_COUNT and share >= ADD_MIN_SHARE:
        return "add", None, f"frequent: {_samples(count)} ({share:.1%})"
    return "ignore", None, f"rare: {_samples(count)} ({share:.2%})"


def _samples(count: int) -> str:
    return f"{count:,} sample" + ("" if count == 1 else "s")


class _Candidates:
    """The normalized ids, names and aliases of the tags of some dimensions, built once."""

    def __init__(self, taxonomy: Taxonomy, dims: list[str]) -> None:
        self.texts: list[str] = []
        self.owners: list[tuple[str, str, str]] = []
        """(dimension, tag id, original text) of each entry of ``texts``."""
        self.words: list[tuple[str, str, str]] = []
        """(dimension, tag id, normalized id) for the contains-its-words rule."""
        for dim in dims:
            for tag in taxonomy.categories[dim].tags:
                for text in (tag.id, tag.name, *tag.aliases):
                    self.texts.append(_normal(text))
                    self.owners.append((dim, tag.id, text))
                words = _normal(tag.id)
                if len(words) >= 4:
                    self.words.append((dim, tag.id, f" {words} "))


def _closest(
    candidates: _Candidates, value: str, *, words_rule: bool
) -> tuple[str, str, str] | None:
    """``(dimension, tag id, why)`` of the closest tag by spelling (the Indel similarity of
    rapidfuzz, the ratio difflib approximates), or of one whose id is among the value's words
    (with ``words_rule``: off for a value without a dimension, where
    ``docker-multi-stage-build`` would become the intent ``build``)."""
    normal = _normal(value)
    best = process.extractOne(
        normal, candidates.texts, scorer=fuzz.ratio, score_cutoff=ALIAS_RATIO * 100
    )
    if best is not None:
        _, score, position = best
        dim, tag_id, text = candidates.owners[position]
        return dim, tag_id, f"spelled like {text!r} (ratio {score / 100:.2f})"
    if words_rule:
        padded = f" {normal} "
        found = [(dim, tag, words) for dim, tag, words in candidates.words if words in padded]
        if found:
            dim, tag_id, _ = max(found, key=lambda entry: len(entry[2]))
            return dim, tag_id, f"a narrower case of {tag_id!r} (contains its words)"
    return None

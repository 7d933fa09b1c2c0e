"""Local signals: cheap, deterministic facts computed from a sample, given to the model as hints.

They steady the answers that depend on evidence in the sample (language, agentic, context) and let
a check flag answers that contradict them: tool actions tagged on a sample without any tool call
or tool message, a language with no evidence at all. The signals are recorded in every labeled
sample's ``labeling_monitor.signals``; the contradictions join its ``consistency_warnings``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec

from sftlabel.model import Sample
from sftlabel.taxonomy import Taxonomy

TOOL_ACTIONS = "Tool Actions"
"""The agentic subcategory whose tags need tool calls or tool messages in the sample."""

_FENCE = re.compile(r"^[ \t]*(?:```+|~~~+)[ \t]*\{?\.?([^\s`{}]*)", re.MULTILINE)
_FILE = re.compile(r"(?<![\w.])((?:[\w.-]+/)*[\w-]+(?:\.[\w-]+)*\.([A-Za-z][A-Za-z0-9+]{0,9}))\b")
_SPECIAL_FILES = re.compile(r"(?<![\w.-])(Dockerfile|Makefile|CMakeLists\.txt|Jenkinsfile)\b")
_SPECIAL = {"Dockerfile": "dockerfile", "Makefile": "makefile", "CMakeLists.txt": "cmake"}

# Spellings of code-fence info strings and file extensions that the taxonomy's aliases do not
# cover; everything else is resolved through the taxonomy (ids and aliases: py, js, yml, rs ...).
_SPELLINGS = {
    "zsh": "shell",
    "console": "shell",
    "shell-session": "shell",
    "jsx": "javascript",
    "mjs": "javascript",
    "cjs": "javascript",
    "tsx": "typescript",
    "cc": "cpp",
    "cxx": "cpp",
    "hpp": "cpp",
    "hh": "cpp",
    "h": "c",
    "tf": "hcl",
    "tfvars": "hcl",
    "kts": "kotlin",
    "cs": "csharp",
    "c#": "csharp",
    "htm": "html",
    "scss": "css",
    "sass": "css",
    "less": "css",
    "exs": "elixir",
    "mm": "objective-c",
    "f90": "fortran",
    "sv": "verilog",
    "vhd": "vhdl",
    "mk": "makefile",
    "j2": "jinja",
    "nginx": "nginx-config",
    "vue": "javascript",
    "svelte": "javascript",
}
# Words that are evidence of a language without naming it: frameworks, tools and formats
# ("Django means python"). Used by the no-evidence check only, never shown as a signal.
_IMPLIED: dict[str, tuple[str, ...]] = {
    "python": ("django", "flask", "fastapi", "pandas", "numpy", "pytest", "pip", "pydantic"),
    "javascript": ("react", "jsx", "vue", "node", "node.js", "nodejs", "npm", "express", "next.js"),
    "typescript": ("tsx", "angular", "nestjs", "tsc", "tsconfig"),
    "sql": ("postgres", "postgresql", "mysql", "sqlite", "mariadb", "duckdb", "psql", "sqlalchemy"),
    "yaml": ("kubernetes", "k8s", "helm", "docker-compose", "github actions", "ansible", "yml"),
    "shell": ("bash", "zsh", "terminal", "shell", "sh"),
    "html": ("<div", "<template", "<html", "<form", "<body", "dom"),
    "css": ("tailwind", "flexbox", "stylesheet", "<style", "scss"),
    "dockerfile": ("docker",),
    "hcl": ("terraform",),
    "ruby": ("rails",),
    "java": ("spring", "spring boot", "jvm"),
    "rust": ("cargo", "crates.io"),
    "toml": ("cargo.toml", "pyproject"),
}
_INLINE_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
"""Tool calls written into the text (Pangu's inline calls are shown so by its reader)."""
_INLINE_NAME = re.compile(r'"name"\s*:\s*"([^"]{1,64})"')
_SHELL_PROMPT = re.compile(r"^\s*\$ \S", re.MULTILINE)
# Extensions that name no language even when a taxonomy alias would match them.
_NOT_LANGUAGES = {"txt", "log", "lock", "csv", "png", "jpg", "gif", "svg", "pdf", "zip", "gz"}


class Signals(msgspec.Struct, kw_only=True):
    """What a program can tell about a sample without a model."""

    fence_languages: list[str]
    """Language ids read from code-fence info strings (in the taxonomy's pool only)."""
    file_languages: list[str]
    """Language ids of the file extensions named in tool calls and tool results."""
    extensions: list[str]
    """The file extensions (``.py``) and special file names (``Dockerfile``) named in tool calls
    and tool results that map to a language, sorted."""
    tool_messages: int
    tool_calls: int
    """Tool calls of assistant messages, structured or inline (``<tool_call>...</tool_call>``)."""
    tool_names: list[str]
    """Tools called or answering, sorted (empty when the format gives no names)."""
    code_blocks: int
    user_turns: int
    messages: int
    truncated: bool
    omitted_messages: int = 0

    @property
    def has_tool_use(self) -> bool:
        return bool(self.tool_messages or self.tool_calls)

    @property
    def languages(self) -> set[str]:
        return set(self.fence_languages) | set(self.file_languages)

    def to_builtins(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


def _language(taxonomy: Taxonomy, spelling: str) -> str | None:
    key = spelling.strip().lower().lstrip(".")
    if not key or key in _NOT_LANGUAGES:
        return None
    return taxonomy.resolve("language", _SPELLINGS.get(key, key))


def compute_signals(sample: Sample, taxonomy: Taxonomy) -> Signals:
    """The local signals of ``sample`` (deterministic; no model involved)."""
    has_language = "language" in taxonomy.categories
    fences: set[str] = set()
    files: set[str] = set()
    extensions: set[str] = set()
    fence_lines = tool_messages = tool_calls = users = 0
    names: set[str] = set()
    tool_text: list[str] = []
    for message in sample.messages:
        if message.role == "user":
            users += 1
        if message.role == "tool":
            tool_messages += 1
            if message.name:
                names.add(message.name)
            tool_text.append(message.content)
        for call in message.tool_calls:
            tool_calls += 1
            if call.name:
                names.add(call.name)
            tool_text.append(call.arguments)
        if message.role == "assistant" and "<tool_call>" in message.content:
            for inline in _INLINE_CALL.finditer(message.content):
                tool_calls += 1
                name = _INLINE_NAME.search(inline.group(1))
                if name:
                    names.add(name.group(1))
                tool_text.append(inline.group(1))
        for match in _FENCE.finditer(message.content):
            fence_lines += 1
            if has_language and match.group(1):
                language = _language(taxonomy, match.group(1))
                if language:
                    fences.add(language)
    for text in tool_text:
        for match in _FILE.finditer(text):
            extension = match.group(2)
            language = _language(taxonomy, extension) if has_language else None
            if language:
                files.add(language)
                extensions.add("." + extension.lower())
        for match in _SPECIAL_FILES.finditer(text):
            language = _language(taxonomy, _SPECIAL[match.group(1)]) if has_language else None
            if language:
                files.add(language)
                extensions.add(match.group(1))
    truncation = sample.truncation
    return Signals(
        fence_languages=sorted(fences),
        file_languages=sorted(files),
        extensions=sorted(extensions),
        tool_messages=tool_messages,
        tool_calls=tool_calls,
        tool_names=sorted(names),
        code_blocks=(fence_lines + 1) // 2,
        user_turns=users,
        messages=len(sample.messages),
        truncated=truncation is not None,
        omitted_messages=truncation.omitted_messages if truncation is not None else 0,
    )


def render_signals(signals: Signals) -> str:
    """The signals as the model sees them (after the sample)."""

    def listed(items: list[str]) -> str:
        return ", ".join(items) if items else "none"

    tools = f" ({listed(signals.tool_names)})" if signals.tool_names else ""
    truncated = f"yes, {signals.omitted_messages} messages omitted" if signals.truncated else "no"
    return (
        "Local signals (computed from the sample by a program; evidence, not labels):\n"
        f"- code-fence languages: {listed(signals.fence_languages)}\n"
        f"- languages of files in tool calls and results: {listed(signals.file_languages)}"
        + (f" ({', '.join(signals.extensions)})" if signals.extensions else "")
        + "\n"
        f"- tool messages: {signals.tool_messages}; tool calls: {signals.tool_calls}{tools}\n"
        f"- code blocks: {signals.code_blocks}; user turns: {signals.user_turns}; "
        f"messages: {signals.messages}; truncated: {truncated}"
    )


@functools.cache
def _tool_actions(taxonomy: Taxonomy) -> frozenset[str]:
    agentic = taxonomy.categories.get("agentic")
    if agentic is None:
        return frozenset()
    return frozenset(t.id for t in agentic.tags if t.subcategory == TOOL_ACTIONS)


@functools.cache
def _mention_patterns(taxonomy: Taxonomy) -> dict[str, re.Pattern[str]]:
    """Per language id: a word pattern of its id, name and aliases."""
    category = taxonomy.categories.get("language")
    if category is None:
        return {}
    patterns: dict[str, re.Pattern[str]] = {}
    for tag in category.tags:
        words = {tag.id, tag.name, *tag.aliases, *_IMPLIED.get(tag.id, ())}
        words |= {w for w, target in _SPELLINGS.items() if target == tag.id}
        alternatives = "|".join(sorted((re.escape(w) for w in words if w), key=len, reverse=True))
        patterns[tag.id] = re.compile(rf"(?<![\w+#])(?:{alternatives})(?![\w+#])", re.IGNORECASE)
    return patterns


def _sample_text(sample: Sample) -> str:
    parts = [sample.system or ""]
    for message in sample.messages:
        parts.append(message.content)
        parts.extend(f"{call.name} {call.arguments}" for call in message.tool_calls)
    return "\n".join(parts)


def signal_warnings(
    taxonomy: Taxonomy, sample: Sample, signals: Signals, values: dict[str, Any]
) -> list[str]:
    """Answers that contradict the signals (warnings, never rejections)."""
    warnings: list[str] = []
    agentic = values.get("agentic")
    tagged = agentic if isinstance(agentic, list) else [agentic] if agentic else []
    actions = sorted(t for t in tagged if t in _tool_actions(taxonomy))
    if actions and not signals.has_tool_use:
        warnings.append(
            f"Agentic tool actions ({', '.join(actions)}) but the sample has no tool calls "
            "or tool messages"
        )
    languages = values.get("language")
    listed = languages if isinstance(languages, list) else [languages] if languages else []
    unsupported = [lang for lang in listed if lang not in signals.languages]
    if unsupported:
        patterns = _mention_patterns(taxonomy)
        text = _sample_text(sample)
        shell = taxonomy.resolve("language", "shell")
        missing = [
            lang
            for lang in unsupported
            if lang in patterns
            and patterns[lang].search(text) is None
            and not (lang == shell and _SHELL_PROMPT.search(text))
        ]
        if missing:
            warnings.append(
                f"Language {', '.join(missing)} has no evidence in the sample "
                "(no code fence, file, mention or framework)"
            )
    return warnings

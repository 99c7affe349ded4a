"""JSON schemas -> llama.cpp grammars whose every output fits the token budget.

A grammar makes invalid JSON impossible, but not unfinished JSON: a tiny model happily repeats
array items or string characters until ``max_tokens`` cuts it off. So before converting a schema
we bound what it leaves unbounded (``maxItems`` on arrays, ``maxLength`` on strings) and compute
the longest text the grammar allows. Every token decodes to at least one byte, so when that
length in bytes is within the budget the JSON always closes. We try generous bounds first and
tighten them until the worst case fits; when even the tightest does not, the request is refused
(400) before generating: broken JSON is worse than no answer.

The conversion itself is llama.cpp's own ``SchemaConverter`` (``$ref``/``$defs``, ``anyOf``,
``enum``, ``const``, integer ranges...). We override two of its rules: strings may hold no raw
control characters (``json.loads`` rejects them) and no ``\\u`` escapes (so a character is at
most 4 bytes), and whitespace is at most one space between tokens.

Parts whose length we cannot bound (free-form objects, ``pattern``, ``format``, recursive
``$ref``) are still enforced by the grammar, best effort: such an answer may end with
``finish_reason="length"``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from minitoolai.engines.errors import EngineRejected

#: (maxItems, maxLength) defaults tried in turn, most generous first
BOUND_LADDER = ((6, 96), (4, 48), (3, 24), (2, 12), (1, 6))
#: strings: no raw control characters, no \u escapes: a character is at most 4 UTF-8 bytes
CHAR_RULE = r'[^"\\\x00-\x1F\x7F] | "\\" ["\\/bfnrt]'
CHAR_BYTES = 4
SPACE_RULE = '" "?'
#: the longest integer / number the converter's rules allow (sign, 16 digits, fraction, exponent)
INTEGER_BYTES = 17
NUMBER_BYTES = 17 + 17 + 18
UNBOUNDED = math.inf
#: keywords whose values are data, not a schema (`properties` is handled on its own)
LITERAL_KEYS = frozenset({"const", "enum", "default", "examples", "required", "properties"})


@dataclass(frozen=True, slots=True)
class JsonGrammar:
    """GBNF text for one constrained answer, and the longest output it allows in bytes
    (``math.inf`` when some part is unbounded)."""

    gbnf: str
    worst_bytes: float


def _resolve(schema: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    """``schema`` with local ``$ref``s inlined; a recursive one becomes the free ``{}``."""
    if isinstance(schema, list):
        return [_resolve(s, defs, seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen or name not in defs:
            return {}
        return _resolve(defs[name], defs, (*seen, name))
    return {
        k: _resolve(v, defs, seen) for k, v in schema.items() if k not in ("$defs", "definitions")
    }


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    resolved: dict[str, Any] = _resolve(schema, defs, ())
    return resolved


def _types(schema: dict[str, Any]) -> list[str | None]:
    kind = schema.get("type")
    return list(kind) if isinstance(kind, list) else [kind]


def bounded(schema: Any, items: int, length: int) -> Any:
    """A copy of ``schema`` with ``maxItems``/``maxLength`` set wherever it has none (never
    below the schema's own ``minItems``/``minLength``)."""
    if isinstance(schema, list):
        return [bounded(s, items, length) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: v if k in LITERAL_KEYS else bounded(v, items, length) for k, v in schema.items()}
    if isinstance(schema.get("properties"), dict):  # names -> schemas
        out["properties"] = {
            name: bounded(sub, items, length) for name, sub in schema["properties"].items()
        }
    kinds = _types(schema)
    if "array" in kinds and "maxItems" not in schema:
        out["maxItems"] = max(items, int(schema.get("minItems", 0)))
    free_string = not any(k in schema for k in ("enum", "const", "pattern", "format"))
    if "string" in kinds and free_string and "maxLength" not in schema:
        out["maxLength"] = max(length, int(schema.get("minLength", 0)))
    return out


def _literal_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8")) + 1  # + a space


def worst_bytes(schema: Any) -> float:
    """The longest text (in UTF-8 bytes) the converted grammar allows for ``schema``."""
    if not isinstance(schema, dict) or not schema:
        return UNBOUNDED
    if "const" in schema:
        return _literal_bytes(schema["const"])
    if "enum" in schema:
        return max((_literal_bytes(v) for v in schema["enum"]), default=UNBOUNDED)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return max((worst_bytes(s) for s in schema[key]), default=UNBOUNDED)
    if "allOf" in schema:
        return UNBOUNDED
    return max(_typed_worst(schema, kind) for kind in _types(schema))


def _typed_worst(schema: dict[str, Any], kind: str | None) -> float:
    if kind == "object" or (kind is None and "properties" in schema):
        return _object_worst(schema)
    if kind == "array":
        return _array_worst(schema)
    if kind == "string":
        if any(k in schema for k in ("pattern", "format")) or "maxLength" not in schema:
            return UNBOUNDED
        return 3 + CHAR_BYTES * int(schema["maxLength"])
    fixed = {"integer": INTEGER_BYTES + 1, "number": NUMBER_BYTES + 1, "boolean": 6, "null": 5}
    return fixed.get(kind or "", UNBOUNDED)


def _object_worst(schema: dict[str, Any]) -> float:
    properties = schema.get("properties")
    extra = schema.get("additionalProperties")
    if not isinstance(properties, dict) or extra not in (None, False):
        return UNBOUNDED
    if not properties and extra is not False:
        return UNBOUNDED  # {"type": "object"}: any object
    members = sum(_literal_bytes(name) + 2 + worst_bytes(sub) for name, sub in properties.items())
    return 3 + members + 2 * len(properties)  # braces, spaces, ", " between members


def _array_worst(schema: dict[str, Any]) -> float:
    items = schema.get("items", schema.get("prefixItems"))
    if isinstance(items, list):
        return 3 + sum(worst_bytes(s) + 2 for s in items)
    if not isinstance(items, dict) or "maxItems" not in schema:
        return UNBOUNDED
    return 3 + int(schema["maxItems"]) * (worst_bytes(items) + 2)


def _converter() -> Any:
    from llama_cpp import llama_grammar

    converter: Any = llama_grammar.SchemaConverter  # untyped
    return converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)


def fit(schemas: list[Any], budget: float) -> tuple[list[Any], float]:
    """The schemas with the most generous bounds under which the longest of them fits
    ``budget`` bytes; the tightest bounds when none do."""
    resolved = [inline_refs(s) if isinstance(s, dict) else s for s in schemas]
    choice: tuple[list[Any], float] = ([], UNBOUNDED)
    for items, length in BOUND_LADDER:
        candidates = [bounded(s, items, length) for s in resolved]
        worst = max((worst_bytes(s) for s in candidates), default=0.0)
        choice = (candidates, worst)
        if worst <= budget:
            break
    return choice


def refuse_if_too_long(worst: float, budget: int) -> None:
    """400 when even the tightest bounds may not close within the budget (never for an
    unbounded schema: that one is best effort, see the module docstring)."""
    if math.isfinite(worst) and worst > budget:
        raise EngineRejected(
            f"max_tokens={budget} is too small to always finish this structured answer: its "
            f"JSON may take up to {int(worst)} tokens. Raise max_tokens (or bound the "
            "schema's strings and arrays with maxLength/maxItems).",
            param="max_tokens",
        )


#: what an answer that is not a tool call may be
TEXT = "text"
ANY_OBJECT = "json_object"
Answer = str | dict[str, Any] | None  # TEXT | ANY_OBJECT | a JSON schema | None: no answer


def build_grammar(
    budget: int, answer: Answer, calls: list[dict[str, Any]] | None = None, marker: str = ""
) -> JsonGrammar | None:
    """The grammar for one answer: a tool call (``marker`` then one of the ``calls`` schemas),
    or an answer (free text, any JSON object, or JSON valid against a schema), or either.
    ``None`` when nothing constrains the output (text, no tools). Raises ``EngineRejected``
    when a JSON branch may not close within ``budget`` tokens.
    """
    if not calls and answer in (TEXT, None):
        return None
    converter = _converter()
    branches: list[str] = []
    worst = 0.0
    schemas = ([{"anyOf": calls}] if calls else []) + ([answer] if isinstance(answer, dict) else [])
    if schemas:
        fitted, worst = fit(schemas, budget - len(marker))
        if calls:
            call = converter.visit(fitted.pop(0), "call")
            branches.append(f"{converter._format_literal(marker)} {call}" if marker else call)
            worst += len(marker)
        if fitted:
            branches.append(converter.visit(fitted[0], "answer"))
    if answer == ANY_OBJECT:
        rules, object_worst = any_object_rules(budget)
        converter._rules.update(rules)
        branches.append("any-root")
        worst = max(worst, object_worst)
    refuse_if_too_long(worst, budget)
    if answer == TEXT:
        converter._rules["answer-text"] = FREE_TEXT_RULE.format(first=_first_excluded(marker))
        branches.append("answer-text")
        worst = UNBOUNDED
    rules = converter._rules  # the converter has no public way to override a rule
    rules["root"] = " | ".join(branches)
    rules["space"] = SPACE_RULE
    rules["char"] = CHAR_RULE
    return JsonGrammar(converter.format_grammar(), worst)


#: free text that cannot begin like the tool-call marker (so the first character decides)
FREE_TEXT_RULE = "[^{first}\\x00] [^\\x00]*"


def _first_excluded(marker: str) -> str:
    return marker[:1] if marker[:1] not in ("", "\\", "]", "^", "-") else ""


#: any JSON object (``json_object``): members and nesting bounded, so it always closes
ANY_OBJECT_MEMBERS = 6
ANY_OBJECT_DEPTH = 2
ANY_STRING_CHARS = 48


def any_object_rules(budget: int) -> tuple[dict[str, str], float]:
    """GBNF rules (root ``any-root``) for any JSON object of bounded size, members and string
    lengths shrunk until the longest fits the budget (else the smallest)."""
    members, chars = ANY_OBJECT_MEMBERS, ANY_STRING_CHARS
    while True:
        worst = _any_object_worst(members, chars, ANY_OBJECT_DEPTH)
        if worst <= budget or (members == 1 and chars <= 4):
            break
        members, chars = max(1, members - 1), max(4, chars // 2)
    return _any_object_rules(members, chars, ANY_OBJECT_DEPTH), worst


def _any_object_worst(members: int, chars: int, depth: int) -> float:
    string = 3 + CHAR_BYTES * chars
    value = max(string, NUMBER_BYTES + 1, 6)
    container = value
    for _ in range(depth):
        container = 3 + members * (string + 2 + value + 2)
        value = max(value, container)
    return container


def _any_object_rules(members: int, chars: int, depth: int) -> dict[str, str]:
    more = f"{{0,{members - 1}}}"
    rules = {
        "any-root": f"any-obj{depth}",
        "any-string": f'"\\"" char{{0,{chars}}} "\\"" space',
        "any-number": '"-"? ([0-9] | [1-9] [0-9]{1,15}) ("." [0-9]{1,15})? space',
        "any-scalar": 'any-string | any-number | ("true" | "false" | "null") space',
        "any-value0": "any-scalar",
    }
    for n in range(1, depth + 1):
        below = f"any-value{n - 1}"
        rules[f"any-member{n}"] = f'any-string ":" space {below}'
        rules[f"any-obj{n}"] = (
            f'"{{" space (any-member{n} ("," space any-member{n}){more})? "}}" space'
        )
        rules[f"any-arr{n}"] = f'"[" space ({below} ("," space {below}){more})? "]" space'
        rules[f"any-value{n}"] = f"any-scalar | any-obj{n} | any-arr{n}"
    return rules

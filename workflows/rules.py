"""Compliance rule sets: a YAML file validated with pydantic, and deterministic rule matching.

Three kinds of rule:
- ``banned_phrase``: phrases that must not appear; each hit becomes a span the refiner
  rewrites, or, with ``preferred``, is replaced by the preferred term, which is then pinned
  while its neighbours are denoised so the sentence still reads;
- ``required_term``: terms or a clause that must appear; a missing one is reported, and
  appended when the rule gives a ``clause``;
- ``redact``: personal data (e-mail addresses, phone numbers, ID-like numbers, or a custom
  regex) replaced deterministically by a placeholder.

Matching is linear in the text (see :mod:`workflows.matching`): user patterns and phrases run
on RE2, and every size a rule set can ask for is bounded (the ``MAX_*`` constants below, named
in the field descriptions), so no rule set can hold a worker for long: the work is at most
(text length) x (phrases and terms + RE2 program size) steps, plus a bounded number of hits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from workflows.limits import RequestRefused
from workflows.matching import (
    MAX_PATTERN_CHARS,
    MAX_PROGRAM,
    EncodedText,
    PatternError,
    compile_user_pattern,
    matcher,
)

MAX_RULES = 64  # rules in one set
MAX_TERMS = 256  # phrases and terms of all rules of a set together: each is one pass over the text
MAX_TERM_CHARS = 200  # longest phrase, term or preferred term
MAX_REPLACEMENT_CHARS = 64  # longest placeholder: a text with many hits must not grow without bound
MAX_CLAUSE_CHARS = 2000  # longest clause appended for a missing required term
MAX_HITS = 100_000  # matches one request may produce (one phrase on a 200,000-character text stays below)

MIN_PHONE_DIGITS = 7
PII_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    # international or national numbers with separators; at least 7 digits in all
    "phone": r"(?<![\w.-])(?!\d{4}-\d{2}-\d{2}(?!\d))(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?"
             r"\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?![\w.-]\d)(?!\w)",
    # long digit runs or digit groups such as 123-45-6789 or DE89 3704 0044 0532 0130 00
    "id_number": r"(?<!\w)(?:[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,3})?|\d{3}-\d{2}-\d{4}|\d{9,})(?!\w)",
}
# the detectors with lookarounds stay on Python's re: every repetition in them is bounded or
# starts after a non-word character, so they are linear (test_rules measures it); the
# e-mail pattern has none and runs on RE2 (on re it is quadratic in a long run of letters)
_PY_PATTERNS = {kind: re.compile(PII_PATTERNS[kind]) for kind in ("phone", "id_number")}

_Term = Annotated[str, Field(min_length=1, max_length=MAX_TERM_CHARS)]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=MAX_TERM_CHARS,
                    description="stable rule id; every edit it causes carries it as its reason")
    description: str = Field("", description="what the rule is for, shown in reports")


class BannedPhrase(_Rule):
    type: Literal["banned_phrase"]
    phrases: list[_Term] = Field(min_length=1, max_length=MAX_TERMS, description=(
        f"phrases that must not appear, each up to {MAX_TERM_CHARS} characters; at most {MAX_TERMS} phrases "
        "and terms in the whole set"))
    preferred: str | None = Field(None, max_length=MAX_TERM_CHARS,
                                  description="term to use instead; pinned while its neighbours are denoised")
    case_sensitive: bool = Field(False, description="match case exactly")
    whole_word: bool = Field(True, description="match only where no letter, digit or underscore touches the phrase")

    @field_validator("phrases")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if any(not p.strip() for p in v):
            raise ValueError("phrases must not be empty strings")
        return v


class RequiredTerm(_Rule):
    type: Literal["required_term"]
    terms: list[_Term] = Field(min_length=1, max_length=MAX_TERMS, description=(
        f"each must appear at least once; each up to {MAX_TERM_CHARS} characters"))
    clause: str | None = Field(None, max_length=MAX_CLAUSE_CHARS,
                               description="text appended (as a new paragraph) when a term is missing")
    case_sensitive: bool = Field(False, description="match case exactly")


class Redact(_Rule):
    type: Literal["redact"]
    kind: Literal["email", "phone", "id_number", "regex"] = Field(description="what to redact")
    pattern: str | None = Field(None, max_length=MAX_PATTERN_CHARS, description=(
        f"the regular expression, for kind=regex, in RE2 syntax (no backreferences or lookarounds; \\w, \\d "
        f"and \\b are ASCII), up to {MAX_PATTERN_CHARS} characters; it must not match the empty string, and the "
        f"regex rules of a set together must compile to at most {MAX_PROGRAM} RE2 instructions"))
    replacement: str = Field("[REDACTED]", max_length=MAX_REPLACEMENT_CHARS, description="deterministic placeholder")

    def spans(self, text: EncodedText) -> Iterable[tuple[int, int]]:
        """Code-point spans of the data this rule redacts in ``text``."""
        if self.kind == "regex":
            if not self.pattern:
                raise ValueError(f"rule {self.id!r}: field 'pattern' is required when kind is 'regex'")
            return text.finditer(matcher(self.pattern))
        if self.kind == "email":
            return text.finditer(matcher(PII_PATTERNS["email"]))
        found = (m.span() for m in _PY_PATTERNS[self.kind].finditer(text.text))
        if self.kind == "phone":  # "10 20" is a range, not a phone number
            return ((s, e) for s, e in found if sum(c.isdigit() for c in text.text[s:e]) >= MIN_PHONE_DIGITS)
        return found


Rule = Annotated[BannedPhrase | RequiredTerm | Redact, Field(discriminator="type")]


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("rules", description="rule set name, recorded in the audit trail")
    version: str = Field("1", description="rule set version, recorded in the audit trail")
    rules: list[Rule] = Field(default_factory=list, max_length=MAX_RULES, description=(
        f"applied in order: redact, banned, required; at most {MAX_RULES} rules"))

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, v: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for r in v:
            if r.id in seen:
                raise ValueError(f"duplicate rule id {r.id!r}")
            seen.add(r.id)
        terms = sum(len(r.phrases) if isinstance(r, BannedPhrase) else len(r.terms) if isinstance(r, RequiredTerm)
                    else 0 for r in v)
        if terms > MAX_TERMS:
            raise ValueError(f"{terms} phrases and terms in all, over the limit of {MAX_TERMS}")
        # compiled here, in order, under one budget: validation runs on the event loop, and
        # this way a set of many bad patterns costs one refused compile, not one per rule
        program = 0
        for i, r in enumerate(v):
            if not isinstance(r, Redact) or r.kind != "regex":
                continue
            where = f"rule {r.id!r} (rules[{i}].pattern)"
            if not r.pattern:
                raise ValueError(f"{where}: field 'pattern' is required when kind is 'regex'")
            try:
                program += compile_user_pattern(r.pattern).programsize
            except PatternError as exc:
                raise ValueError(f"{where}: {exc}") from None
            if program > MAX_PROGRAM:
                raise ValueError(f"{where}: the regex rules up to this one compile to {program} RE2 instructions, "
                                 f"over the limit of {MAX_PROGRAM} for a rule set; use fewer or simpler patterns")
        return v


class RuleSetError(ValueError):
    """A rule file that does not validate; the message names the rule and the field."""


class TooManyHits(RuleSetError, RequestRefused):
    """The rules match a text more often than :data:`MAX_HITS`: the request is refused whole.

    A compliance result must be complete (a document with some personal data left in would
    pass for clean), so the work is refused rather than cut short. The HTTP API answers 422
    naming ``rules``; a batch item fails alone, into the errors file.
    """

    def __init__(self, message: str) -> None:
        RequestRefused.__init__(self, "rules", message, "too_many_hits")

    def __reduce__(self) -> tuple[type[TooManyHits], tuple[str]]:
        return TooManyHits, (self.message,)  # crosses process boundaries (Ray replicas) intact


def parse_rules(data: object) -> RuleSet:
    """Validate a decoded rule set (dict), turning pydantic errors into named messages."""
    try:
        return TypeAdapter(RuleSet).validate_python(data)
    except ValidationError as exc:
        raise RuleSetError(_describe(exc, data)) from None


def load_rules(source: str | Path) -> RuleSet:
    """Load a rule set from a YAML file path or a YAML string."""
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) or (
        isinstance(source, str) and "\n" not in source and Path(source).is_file()
    ) else str(source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleSetError(f"rule file is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RuleSetError("rule file must be a mapping with a 'rules' list")
    return parse_rules(data)


def _describe(exc: ValidationError, data: object) -> str:
    """One message per error: ``rule 'r' (rules[2].pattern): ...`` names the rule and the field."""
    msgs = []
    rules = data.get("rules") if isinstance(data, dict) else None
    for err in exc.errors():
        loc = list(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            idx = loc[1]
            rule = rules[idx] if isinstance(rules, list) and idx < len(rules) else None
            rid = rule.get("id", "?") if isinstance(rule, dict) else "?"
            field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[2:]
                            if p not in ("banned_phrase", "required_term", "redact")) or ".type"
            msgs.append(f"rule {rid!r} (rules[{idx}]{field}): {msg}")
        elif msg.startswith("rule "):  # a check across the rules that names the rule itself
            msgs.append(msg)
        else:
            msgs.append(f"field {'.'.join(str(p) for p in loc) or 'rules'!r}: {msg}")
    return "; ".join(msgs)


@dataclass(frozen=True)
class RuleHit:
    """Where a rule applies: ``text[start:end]`` and what to do about it."""

    rule_id: str
    start: int
    end: int
    action: Literal["redact", "rewrite", "replace", "append"]
    replacement: str | None = None  # for redact / replace / append


# the most specific detectors claim text first: an IBAN is not a phone number
_PRIORITY = {"email": 0, "id_number": 1, "regex": 2, "phone": 3}


def _groups(text: EncodedText, rules: RuleSet) -> Iterable[list[RuleHit]]:
    """The hits of each detector (one redact rule, or one phrase of a banned rule), in claim order.

    Within a group the hits are sorted and do not overlap (each is a left-to-right search).
    """
    redacts = sorted((r for r in rules.rules if isinstance(r, Redact)), key=lambda r: _PRIORITY[r.kind])
    for r in redacts:
        yield [RuleHit(r.id, s, e, "redact", r.replacement) for s, e in r.spans(text)]
    for ban in rules.rules:
        if isinstance(ban, BannedPhrase):
            action: Literal["replace", "rewrite"] = "replace" if ban.preferred else "rewrite"
            for phrase in ban.phrases:
                yield [RuleHit(ban.id, s, e, action, ban.preferred)
                       for s, e in text.phrase(phrase, ban.case_sensitive, ban.whole_word)]


def _claim(kept: list[RuleHit], group: list[RuleHit]) -> list[RuleHit]:
    """``kept`` plus the hits of ``group`` that overlap none of it; both sorted, linear time.

    ``kept`` never overlaps itself, so its ends rise with its starts and one pointer finds,
    for each new hit, the only kept hit it could overlap: the first that ends after it starts.
    """
    free: list[RuleHit] = []
    j = 0
    for h in group:
        while j < len(kept) and kept[j].end <= h.start:
            j += 1
        if j == len(kept) or kept[j].start >= h.end:
            free.append(h)
    # two sorted runs: Python's merge sort joins them in linear time
    return sorted(kept + free, key=lambda h: (h.start, h.end)) if free else kept


def find_hits(text: str, rules: RuleSet, max_hits: int = MAX_HITS) -> list[RuleHit]:
    """Every place a rule applies, sorted; a hit that overlaps one claimed before it is dropped.

    Detectors claim text in order: e-mail, ID numbers, user regexes, phone numbers, then the
    banned phrases in rule order. Linear in the text and the number of hits; more than
    ``max_hits`` matches raise :class:`TooManyHits`.
    """
    enc = EncodedText(text)
    kept: list[RuleHit] = []
    found = 0
    for group in _groups(enc, rules):
        found += len(group)
        if found > max_hits:
            raise TooManyHits(f"the rules match this text more than {max_hits} times; split the text or narrow "
                              "the rules")
        kept = _claim(kept, group)
    for req in rules.rules:
        if isinstance(req, RequiredTerm) and not all(enc.contains(t, req.case_sensitive) for t in req.terms):
            kept.append(RuleHit(req.id, len(text), len(text), "append", req.clause))
    return kept

"""Compliance rule sets: a YAML file validated with pydantic, and deterministic rule matching.

Three kinds of rule:
- ``banned_phrase``: phrases that must not appear; each hit becomes a span the refiner
  rewrites, or, with ``preferred``, is replaced by the preferred term, which is then pinned
  while its neighbours are denoised so the sentence still reads;
- ``required_term``: terms or a clause that must appear; a missing one is reported, and
  appended when the rule gives a ``clause``;
- ``redact``: personal data (e-mail addresses, phone numbers, ID-like numbers, or a custom
  regex) replaced deterministically by a placeholder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

MIN_PHONE_DIGITS = 7
PII_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    # international or national numbers with separators; at least 7 digits in all
    "phone": r"(?<![\w.-])(?!\d{4}-\d{2}-\d{2}(?!\d))(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?![\w.-]\d)(?!\w)",
    # long digit runs or digit groups such as 123-45-6789 or DE89 3704 0044 0532 0130 00
    "id_number": r"(?<!\w)(?:[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,3})?|\d{3}-\d{2}-\d{4}|\d{9,})(?!\w)",
}


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, description="stable rule id; every edit it causes carries it as its reason")
    description: str = Field("", description="what the rule is for, shown in reports")


class BannedPhrase(_Rule):
    type: Literal["banned_phrase"]
    phrases: list[str] = Field(min_length=1, description="phrases that must not appear")
    preferred: str | None = Field(None, description="term to use instead; pinned while its neighbours are denoised")
    case_sensitive: bool = Field(False, description="match case exactly")
    whole_word: bool = Field(True, description="match only at word boundaries")

    @field_validator("phrases")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if any(not p.strip() for p in v):
            raise ValueError("phrases must not be empty strings")
        return v


class RequiredTerm(_Rule):
    type: Literal["required_term"]
    terms: list[str] = Field(min_length=1, description="each must appear at least once")
    clause: str | None = Field(None, description="text appended (as a new paragraph) when a term is missing")
    case_sensitive: bool = Field(False, description="match case exactly")


class Redact(_Rule):
    type: Literal["redact"]
    kind: Literal["email", "phone", "id_number", "regex"] = Field(description="what to redact")
    pattern: str | None = Field(None, description="the regular expression, for kind=regex")
    replacement: str = Field("[REDACTED]", description="deterministic placeholder")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return v

    def regex(self) -> re.Pattern[str]:
        if self.kind == "regex":
            if not self.pattern:
                raise ValueError(f"rule {self.id!r}: field 'pattern' is required when kind is 'regex'")
            return re.compile(self.pattern)
        return re.compile(PII_PATTERNS[self.kind])


Rule = Annotated[BannedPhrase | RequiredTerm | Redact, Field(discriminator="type")]


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("rules", description="rule set name, recorded in the audit trail")
    version: str = Field("1", description="rule set version, recorded in the audit trail")
    rules: list[Rule] = Field(default_factory=list, description="applied in order: redact, banned, required")

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, v: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for r in v:
            if r.id in seen:
                raise ValueError(f"duplicate rule id {r.id!r}")
            seen.add(r.id)
        for r in v:
            if isinstance(r, Redact) and r.kind == "regex" and not r.pattern:
                raise ValueError(f"rule {r.id!r}: field 'pattern' is required when kind is 'regex'")
        return v


class RuleSetError(ValueError):
    """A rule file that does not validate; the message names the rule and the field."""


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
    msgs = []
    rules = data.get("rules") if isinstance(data, dict) else None
    for err in exc.errors():
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            idx = loc[1]
            rid = rules[idx].get("id", "?") if isinstance(rules, list) and idx < len(rules) and isinstance(rules[idx], dict) else "?"
            fields = [str(p) for p in loc[2:] if p not in ("banned_phrase", "required_term", "redact")]
            field = ".".join(fields) or "type"
            msgs.append(f"rule {rid!r} (rules[{idx}]): field {field!r}: {err['msg']}")
        else:
            msgs.append(f"field {where or 'rules'!r}: {err['msg']}")
    return "; ".join(msgs)


@dataclass(frozen=True)
class RuleHit:
    """Where a rule applies: ``text[start:end]`` and what to do about it."""

    rule_id: str
    start: int
    end: int
    action: Literal["redact", "rewrite", "replace", "append"]
    replacement: str | None = None  # for redact / replace / append


def find_hits(text: str, rules: RuleSet) -> list[RuleHit]:
    """Every place a rule applies, in rule order; overlapping later hits are dropped."""
    hits: list[RuleHit] = []
    # the most specific detectors claim text first: an IBAN is not a phone number
    priority = {"email": 0, "id_number": 1, "regex": 2, "phone": 3}
    redacts = sorted((r for r in rules.rules if isinstance(r, Redact)), key=lambda r: priority[r.kind])
    for r in redacts:
        for m in r.regex().finditer(text):
            if r.kind == "phone" and sum(c.isdigit() for c in m.group()) < MIN_PHONE_DIGITS:
                continue  # "10 20" is a range, not a phone number
            hits.append(RuleHit(r.id, m.start(), m.end(), "redact", r.replacement))
    for rule in rules.rules:
        if isinstance(rule, BannedPhrase):
            ban = rule
            flags = 0 if ban.case_sensitive else re.IGNORECASE
            for phrase in ban.phrases:
                pat = re.escape(phrase)
                if ban.whole_word:
                    pat = rf"(?<!\w){pat}(?!\w)"
                for m in re.finditer(pat, text, flags):
                    action: Literal["replace", "rewrite"] = "replace" if ban.preferred else "rewrite"
                    hits.append(RuleHit(ban.id, m.start(), m.end(), action, ban.preferred))
    kept: list[RuleHit] = []
    for h in hits:
        if all(h.end <= k.start or h.start >= k.end for k in kept):
            kept.append(h)
    for rule in rules.rules:
        if isinstance(rule, RequiredTerm):
            req = rule
            flags = 0 if req.case_sensitive else re.IGNORECASE
            missing = [t for t in req.terms if not re.search(re.escape(t), text, flags)]
            if missing:
                kept.append(RuleHit(req.id, len(text), len(text), "append", req.clause))
    return sorted(kept, key=lambda h: (h.start, h.end))

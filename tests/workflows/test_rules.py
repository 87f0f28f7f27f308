import random
import re
import time

import pytest

from workflows.matching import MAX_PATTERN_CHARS, MAX_PROGRAM, EncodedText, compile_user_pattern
from workflows.rules import (
    MAX_RULES,
    MAX_TERM_CHARS,
    MAX_TERMS,
    RuleSetError,
    TooManyHits,
    find_hits,
    load_rules,
    parse_rules,
)

RULES = """
name: acme
rules:
  - {id: no-guarantee, type: banned_phrase, phrases: [guarantee, risk-free], preferred: commitment}
  - {id: no-always, type: banned_phrase, phrases: [always]}
  - {id: gdpr, type: required_term, terms: [GDPR], clause: This agreement is subject to the GDPR.}
  - {id: pii-email, type: redact, kind: email, replacement: "[EMAIL]"}
  - {id: pii-phone, type: redact, kind: phone, replacement: "[PHONE]"}
  - {id: pii-id, type: redact, kind: id_number}
"""


def test_hits_cover_every_rule_kind():
    rs = load_rules(RULES)
    text = ("We guarantee a risk-free plan and always reply. Mail jane.doe@acme.com or call "
            "+49 30 1234 5678. SSN 123-45-6789. Python 3.11.7, released 2026-11-23.")
    hits = {(h.rule_id, text[h.start : h.end]) for h in find_hits(text, rs)}
    assert hits == {
        ("no-guarantee", "guarantee"), ("no-guarantee", "risk-free"), ("no-always", "always"),
        ("pii-email", "jane.doe@acme.com"), ("pii-phone", "+49 30 1234 5678"),
        ("pii-id", "123-45-6789"), ("gdpr", ""),
    }


def test_whole_word_and_case():
    rs = load_rules("rules: [{id: b, type: banned_phrase, phrases: [always]}]")
    assert [h.start for h in find_hits("Always; hallways always", rs)] == [0, 17]


def test_required_term_present_gives_no_hit():
    rs = load_rules(RULES)
    assert not any(h.rule_id == "gdpr" for h in find_hits("Under the gdpr we act.", rs))


@pytest.mark.parametrize("text,needle", [
    ("rules: [{id: x, type: banned_phrase}]", "rule 'x' (rules[0].phrases): Field required"),
    ("rules: [{id: y, type: redact, kind: regex, pattern: '('}]", "rule 'y' (rules[0].pattern): not a valid RE2"),
    ("rules: [{id: z, type: nope}]", "rule 'z' (rules[0].type)"),
    ("rules: [{id: w, type: required_term, terms: [a], colour: 1}]", "rule 'w' (rules[0].colour)"),
    ("rules: [{id: q, type: redact, kind: regex}]", "rule 'q' (rules[0].pattern): field 'pattern' is required"),
    ("rules: [{id: p, type: banned_phrase, phrases: [a, '  ']}]", "rule 'p' (rules[0].phrases): phrases must not"),
    ("rules: [{id: d, type: banned_phrase, phrases: [a]}, {id: d, type: banned_phrase, phrases: [b]}]",
     "duplicate rule id 'd'"),
    ("rules: [unclosed", "not valid YAML"),
    ("- just a list", "must be a mapping"),
])
def test_rule_errors_name_rule_and_field(text, needle):
    with pytest.raises(RuleSetError) as exc:
        load_rules(text)
    assert needle in str(exc.value)


def test_load_from_file(tmp_path):
    p = tmp_path / "rules.yaml"
    p.write_text(RULES)
    assert load_rules(p).name == "acme"


# --- user patterns: RE2 only, bounded, never an empty match ---------------------------------

def _regex_rules(*patterns: str) -> dict:
    return {"rules": [{"id": f"r{i}", "type": "redact", "kind": "regex", "pattern": p} for i, p in enumerate(patterns)]}


@pytest.mark.parametrize("pattern,needle", [
    (r"(a)\1", "not a valid RE2 pattern"),  # backreference
    (r"(?=a)a", "not a valid RE2 pattern"),  # lookahead
    (r"(?<!x)a", "not a valid RE2 pattern"),  # lookbehind
    (r"a\C", "any byte"),  # would split UTF-8 characters
    ("a" * (MAX_PATTERN_CHARS + 1), f"at most {MAX_PATTERN_CHARS} characters"),
    (r"(?:[abc]{1,25}){20}(?:[abd]{1,25}){20}e", f"over the limit of {MAX_PROGRAM}"),  # ~4,000 instructions
    (r"(?:\pL{1,20}){10}d", f"too large: it compiles to over {MAX_PROGRAM}"),  # short to write, ~240,000
])
def test_patterns_re2_refuses_are_named(pattern, needle):
    with pytest.raises(RuleSetError) as exc:
        parse_rules(_regex_rules("ok", pattern))
    assert "rule 'r1' (rules[1].pattern)" in str(exc.value) and needle in str(exc.value)


@pytest.mark.parametrize("pattern", ["x*", "a?", "(|a)", "(?:abc)*", r"\b", r"\B", "^", "$", "(?m)^", r"a*\b"])
def test_a_pattern_that_can_match_nothing_is_refused(pattern):
    with pytest.raises(RuleSetError) as exc:
        parse_rules(_regex_rules(pattern))
    assert "rules[0].pattern" in str(exc.value) and "empty string" in str(exc.value)


@pytest.mark.parametrize("pattern", ["a+", r"\bfoo\b", "x*y", r"^\d{3}", r"(?i)[a-zé]+@"])
def test_a_pattern_that_always_consumes_is_accepted(pattern):
    parse_rules(_regex_rules(pattern))


def test_the_regex_budget_counts_every_pattern_of_the_set():
    # each alone is accepted; together they compile to more than the set may
    one = r"(?:[abc]{1,25}){3}x"
    size = compile_user_pattern(one).programsize
    n = MAX_PROGRAM // size + 1
    with pytest.raises(RuleSetError) as exc:
        parse_rules(_regex_rules(*[one + str(i) for i in range(n)]))
    assert f"(rules[{n - 1}].pattern)" in str(exc.value) and f"limit of {MAX_PROGRAM}" in str(exc.value)


def test_sizes_of_a_rule_set_are_bounded():
    many = {"rules": [{"id": f"b{i}", "type": "banned_phrase", "phrases": ["x"]} for i in range(MAX_RULES + 1)]}
    with pytest.raises(RuleSetError, match=f"at most {MAX_RULES} items"):
        parse_rules(many)
    terms = {"rules": [{"id": f"b{i}", "type": "banned_phrase", "phrases": [f"w{i}-{j}" for j in range(100)]}
                       for i in range(3)]}
    with pytest.raises(RuleSetError, match=f"300 phrases and terms in all, over the limit of {MAX_TERMS}"):
        parse_rules(terms)
    with pytest.raises(RuleSetError, match=r"rules\[0\]\.phrases\[0\]"):
        parse_rules({"rules": [{"id": "b", "type": "banned_phrase", "phrases": ["x" * (MAX_TERM_CHARS + 1)]}]})


@pytest.mark.timeout(20)
def test_a_catastrophic_pattern_matches_in_linear_time():
    # on Python's re, (a+)+$ over n a's and a '!' takes 2^n steps: n = 40 is hours
    rs = parse_rules(_regex_rules("(a+)+$"))
    assert find_hits("a" * 100_000 + "!", rs) == []
    assert [(h.start, h.end) for h in find_hits("b" + "a" * 50_000, rs)] == [(1, 50_001)]


def test_too_many_hits_refuse_the_text():
    rs = load_rules("rules: [{id: b, type: banned_phrase, phrases: [a], whole_word: false}]")
    assert len(find_hits("a" * 1000, rs, max_hits=1000)) == 1000
    with pytest.raises(TooManyHits, match="more than 999 times"):
        find_hits("a" * 1000, rs, max_hits=999)


def test_a_user_regex_finds_unicode_offsets():
    rs = parse_rules(_regex_rules(r"[0-9]{3}"))
    text = "é😀 123 ü 456"
    assert [text[h.start:h.end] for h in find_hits(text, rs)] == ["123", "456"]


# --- phrases on RE2 keep the meaning of Python's (?<!\w)phrase(?!\w) ------------------------

ALPHABET = ["a", "b", "A", "é", "É", "_", "1", " ", "-", ".", "\n", "ß", "😀"]
PHRASES = ["a", "ab", "a a", "-a", "a-", "é", "éa", "_a", "1", "a.", "ß", "😀a"]


@pytest.mark.parametrize("seed", range(4))
def test_phrase_search_matches_python_re(seed):
    rng = random.Random(seed)
    for _ in range(150):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40)))
        enc = EncodedText(text)
        for phrase in rng.sample(PHRASES, 4):
            for case_sensitive, whole_word in [(True, True), (False, True), (True, False)]:
                pat = re.escape(phrase)
                if whole_word:
                    pat = rf"(?<!\w){pat}(?!\w)"
                want = [m.span() for m in re.finditer(pat, text, 0 if case_sensitive else re.IGNORECASE)]
                assert list(enc.phrase(phrase, case_sensitive, whole_word)) == want, (text, phrase)


# --- the built-in detectors are linear -------------------------------------------------------

def _best_time(fn, repeats: int = 3) -> float:
    """Least CPU time of this process over ``repeats`` runs: other work on the machine hardly moves it."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


@pytest.mark.timeout(60)
def test_the_email_detector_is_linear_in_a_long_run_of_letters():
    # on Python's re this pattern is quadratic here: 40,000 letters took 3 s, 200,000 would take ~80 s
    rs = load_rules("rules: [{id: e, type: redact, kind: email}]")
    assert _best_time(lambda: find_hits("a." * 100_000, rs), repeats=1) < 5.0
    assert [h.end for h in find_hits("x" * 100_000 + "@acme.com", rs)] == [100_009]


@pytest.mark.parametrize("kind,unit", [
    ("phone", "12 "), ("phone", "1 "), ("phone", "+1 (12) "), ("phone", "12."), ("phone", "2020-01-01 "),
    ("id_number", "AB12 "), ("id_number", "AB12"), ("id_number", "123-45-"), ("id_number", "1"),
])
def test_the_lookaround_detectors_stay_linear(kind, unit):
    # they stay on Python's re: 8 times the text must cost about 8 times as much, not 64
    rs = parse_rules({"rules": [{"id": "p", "type": "redact", "kind": kind}]})
    small, large = (unit * (20_000 // len(unit)))[:20_000], (unit * (160_000 // len(unit)))[:160_000]
    ratio = _best_time(lambda: find_hits(large, rs)) / max(_best_time(lambda: find_hits(small, rs)), 1e-4)
    assert ratio < 24, f"{kind} over {unit!r}: 8x the text took {ratio:.1f}x the time"

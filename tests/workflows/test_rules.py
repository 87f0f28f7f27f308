import pytest

from workflows.rules import RuleSetError, find_hits, load_rules

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
    ("rules: [{id: x, type: banned_phrase}]", "rule 'x' (rules[0]): field 'phrases'"),
    ("rules: [{id: y, type: redact, kind: regex, pattern: '('}]", "rule 'y' (rules[0]): field 'pattern'"),
    ("rules: [{id: z, type: nope}]", "rule 'z' (rules[0]): field 'type'"),
    ("rules: [{id: w, type: required_term, terms: [a], colour: 1}]", "rule 'w' (rules[0]): field 'colour'"),
    ("rules: [{id: q, type: redact, kind: regex}]", "rule 'q': field 'pattern' is required"),
    ("rules: [{id: d, type: banned_phrase, phrases: [a]}, {id: d, type: banned_phrase, phrases: [b]}]", "duplicate rule id 'd'"),
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

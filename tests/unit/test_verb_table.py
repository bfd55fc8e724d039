"""The verb table (harness/steps.py): each step type declared once, read by the parser and both
backends; a new verb is one declaration plus its two backend methods."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness import steps
from harness.kernel_backend import KernelExecutor
from harness.model_backend import ModelExecutor
from harness.parser import VERBS, ScenarioError, parse_text
from harness.steps import STEP_TYPES, Executor, Expect, FlowStep, Step, Verb


def test_every_declared_verb_has_both_backend_methods():
    for verb in STEP_TYPES:
        assert callable(getattr(ModelExecutor, "do_" + verb)), verb
        assert callable(getattr(KernelExecutor, "do_" + verb)), verb


def test_the_parser_lists_the_declared_verbs_in_declaration_order():
    assert VERBS == tuple(STEP_TYPES)
    assert VERBS[:3] == ("socket", "setsockopt", "bind")
    assert {t.VERB.name for t in STEP_TYPES.values()} == set(VERBS)


def test_flow_verbs_share_a_base_not_syn():
    flows = {v for v, t in STEP_TYPES.items() if issubclass(t, FlowStep)}
    assert flows == {"syn", "syn_only", "ack", "dgram"}
    assert not issubclass(STEP_TYPES["syn_only"], STEP_TYPES["syn"])
    assert not issubclass(STEP_TYPES["ack"], STEP_TYPES["syn"])


def test_declarations_are_what_the_backends_act_on():
    keeps = {v for v, t in STEP_TYPES.items() if t.VERB.keeps_queues}
    assert keeps == {"syn", "syn_only", "ack", "accept", "queue", "inuse", "tw", "dgram"}
    assert {v for v, t in STEP_TYPES.items() if t.VERB.injected} == {"syn", "syn_only", "ack"}
    assert {v for v, t in STEP_TYPES.items() if t.VERB.batched} == {"syn", "dgram"}
    assert {v for v, t in STEP_TYPES.items() if t.VERB.names} == {"socket", "accept", "sockarray"}


@pytest.fixture
def foo_verb():
    """A verb declared the way docs/design.md, Adding a verb, says; unregistered afterwards."""

    @dataclass(frozen=True)
    class FooStep(Step, verb=Verb("foo", "foo(a)", Expect.COUNT_OR_ERRNO, 1, keeps_queues=True)):
        sock: str

        @classmethod
        def parse(cls, p, c):
            return cls(c.lineno, c.text, c.expect, p.sock_ref(c, c.args[0]))

    try:
        yield FooStep
    finally:
        del STEP_TYPES["foo"]


def test_a_new_verb_is_one_declaration_the_parser_reads(foo_verb):
    sc = parse_text("t.scn", "a = socket(AF_INET, SOCK_STREAM)\nfoo(a) = 3\n")
    step = sc.steps[1]
    assert isinstance(step, foo_verb) and step.verb == "foo" and step.sock == "a"
    assert step.expect == "3" and step.uses == "a"
    with pytest.raises(ScenarioError, match=r"t.scn:2:10: expected a count, got 'x'"):
        parse_text("t.scn", "a = socket(AF_INET, SOCK_STREAM)\nfoo(a) = x\n")
    with pytest.raises(ScenarioError, match=r"t.scn:2:1: foo\(\) takes 1 argument\(s\): foo\(a\)"):
        parse_text("t.scn", "a = socket(AF_INET, SOCK_STREAM)\nfoo(a, b)\n")
    with pytest.raises(ScenarioError, match=r"unknown socket 'b'"):
        parse_text("t.scn", "a = socket(AF_INET, SOCK_STREAM)\nfoo(b)\n")


def test_a_backend_without_the_new_verbs_method_is_refused_when_defined(foo_verb):
    with pytest.raises(TypeError, match=r"Lacking has no do_foo"):
        class Lacking(ModelExecutor):  # noqa: F841 - the definition is what fails
            pass

    class Complete(ModelExecutor):
        def do_foo(self, step, choice):
            return None

    assert issubclass(Complete, Executor)


def test_an_executor_missing_methods_names_them_all():
    with pytest.raises(TypeError) as e:
        class Empty(Executor):  # noqa: F841
            pass
    for verb in steps.STEP_TYPES:
        assert "do_" + verb in str(e.value)

"""`record`: write the kernel's outcomes into a scenario as `= …` expectations."""

from __future__ import annotations

from harness.compare import ScenarioResult
from harness.parser import _CALL


def rewrite_line(raw: str, value: str | None) -> str:
    """The line with its expectation set to `value` ("": removed; None: left as it is);
    comment kept."""
    if value is None:
        return raw
    body, hash_, comment = raw.partition("#")
    m = _CALL.match(body)
    if not m:
        return raw
    close = body.find(")", m.end())
    new = body[: close + 1].rstrip() + (f" = {value}" if value else "")
    if hash_:
        col = len(body)  # the comment stays in its column when there is room
        new = (new.ljust(col) if len(new) + 1 < col else new + "  ") + "#" + comment
    return new


def recorded_text(result: ScenarioResult) -> str:
    """The scenario's source with every non-random step's expectation set from the kernel."""
    lines = list(result.scenario.lines)
    for s in result.steps:
        if s.kernel is None:
            continue
        # a value the kernel picks at random is no expectation: any old one is removed
        random = s.model is not None and s.model.random
        lines[s.step.line - 1] = rewrite_line(lines[s.step.line - 1], "" if random else s.kernel.value)
    return "\n".join(lines) + "\n"

"""Property fuzz of every AMI action builder: no value ever yields more than one action.

What would be written is parsed the way Asterisk reads it (a bare LF ends a line, an empty line
ends the action; `Variable:` headers split like __ast_app_separate_args), so a value either is
refused with AmiUnsafeValue or arrives as exactly the one header it was meant to be.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contactd.ami import actions
from contactd.ami.client import AmiClient
from contactd.ami.errors import AmiUnsafeValue
from contactd.config import AmiSettings

FRAMING = re.compile(r"[\r\n\x00]")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def asterisk_actions(data: bytes) -> list[list[tuple[str, str]]]:
    """Split written bytes into actions of (key, value) headers as manager.c reads them."""
    found: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for raw in data.decode("utf8").split("\n"):
        line = raw.removesuffix("\r")
        if not line:
            if current:
                found.append(current)
            current = []
            continue
        key, _, value = line.partition(": ")
        current.append((key, value))
    if current:
        found.append(current)
    return found


def asterisk_variables(header: str) -> list[str]:
    """app.c __ast_app_separate_args(buf, ',', remove_chars=1): the `Variable:` split."""
    out: list[str] = []
    cur: list[str] = []
    paren = bracket = 0
    quote = False
    chars = iter(header)
    for c in chars:
        if c == "(":
            paren += 1
        elif c == ")":
            paren -= paren > 0
        elif c == "[":
            bracket += 1
        elif c == "]":
            bracket -= bracket > 0
        elif c == '"':
            quote = not quote
            continue
        elif c == "\\":
            c = next(chars, "")
        elif c == "," and not (paren or quote or bracket):
            out.append("".join(cur))
            cur = []
            continue
        cur.append(c)
    out.append("".join(cur))
    return out


text = st.text(st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["a\nAction: Originate", "x\r\nApplication: System", "n\x00", "a,b=c", 'q"(,)[,]\\']
)


def unsafe(*values: object) -> bool:
    return any(FRAMING.search(str(v)) for v in values)


def check(build: Callable[[], actions.ActionFields], *inputs: object, names: list[str]) -> None:
    try:
        fields = build()
        data = actions.wire(fields)
    except AmiUnsafeValue:
        assert unsafe(*inputs) or any(not NAME.fullmatch(n) for n in names)
        return
    assert not unsafe(*inputs)
    (action,) = asterisk_actions(data)  # exactly one action, whatever the values
    assert action[0] == ("Action", fields["Action"])
    expected = sum(len(v) if isinstance(v, list) else 1 for v in fields.values())
    assert len(action) == expected


@settings(max_examples=300, deadline=None)
@given(
    attempt=text,
    dial=text,
    context=text,
    data=text,
    caller_id=text,
    variables=st.dictionaries(text | st.from_regex(NAME, fullmatch=True), text, max_size=4),
)
def test_originate(
    attempt: str, dial: str, context: str, data: str, caller_id: str, variables: dict[str, str]
) -> None:
    def build() -> actions.ActionFields:
        return actions.originate(
            attempt, dial, context=context, caller_id=caller_id, variables=variables
        )

    check(build, attempt, dial, context, caller_id, *variables.values(), names=list(variables))
    check(
        lambda: actions.originate(attempt, dial, application=context, data=data),
        attempt,
        dial,
        context,
        data,
        names=[],
    )
    if unsafe(attempt, dial, context, caller_id, *variables.values()) or not all(
        NAME.fullmatch(n) for n in variables
    ):
        return
    # every variable arrives as exactly its own name=value
    headers = [v for k, v in asterisk_actions(actions.wire(build()))[0] if k == "Variable"]
    parsed = [asterisk_variables(h) for h in headers]
    assert all(len(p) == 1 for p in parsed)
    pairs = [p[0].split("=", 1) for p in parsed]
    assert pairs == [[actions.ATTEMPT_VARIABLE, attempt], *map(list, variables.items())]


@settings(max_examples=200, deadline=None)
@given(a=text, b=text, c=text, d=text, flag=st.booleans())
def test_every_other_builder(a: str, b: str, c: str, d: str, flag: bool) -> None:
    cases: list[tuple[Callable[[], Any], tuple[object, ...], list[str]]] = [
        (lambda: actions.redirect(a, b, c, extra_channel=d), (a, b, c, d), []),
        (lambda: actions.hangup(a), (a,), []),
        (lambda: actions.setvar(a, b, c), (a, b, c), [b]),
        (lambda: actions.getvar(a, b), (a, b), [b]),
        (lambda: actions.queue_add(a, b, member_name=c, state_interface=d), (a, b, c, d), []),
        (lambda: actions.queue_remove(a, b), (a, b), []),
        (lambda: actions.queue_pause(a, flag, queue=b, reason=c), (a, b, c), []),
        (lambda: actions.command(a), (a,), []),
        (actions.core_show_channels, (), []),
    ]
    for build, inputs, names in cases:
        check(build, *inputs, names=names)


@pytest.mark.parametrize(
    "fields",
    [
        {"Action": "Ping", "X": "1\n"},
        {"Action": "Ping", "X": ["ok", "2\r"]},
        {"Action": "Ping\x00"},
        {"Action": "Ping", "Bad: key": "1"},
        {"Action": "Ping", "": "1"},
    ],
)
async def test_the_client_refuses_before_sending(fields: dict[str, Any]) -> None:
    client = AmiClient(AmiSettings())
    with pytest.raises(AmiUnsafeValue):
        await client._send(fields, 1.0)  # refused before the connection is even looked at


def test_a_bad_variable_name_is_named() -> None:
    with pytest.raises(AmiUnsafeValue, match="CONTACTD X"):
        actions.originate("a1", "PJSIP/1", context="c", variables={"CONTACTD X": "1"})

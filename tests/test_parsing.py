"""Recovering tool calls from the many ways models write them."""

from __future__ import annotations

import json

import pytest

from routine.models.parsing import CallParseError, first_call_complete, parse_reply


@pytest.mark.parametrize("text", [
    '<tool_call>\n{"name": "get_employee", "arguments": {"employee_id": 7}}\n</tool_call>',
    '<tool_call>{"name": "get_employee", "arguments": {"employee_id": 7}}',  # unclosed tag
    '```json\n{"name": "get_employee", "arguments": {"employee_id": 7}}\n```',
    '```\n{"name": "get_employee", "arguments": {"employee_id": 7}}\n```',
    '{"name": "get_employee", "arguments": {"employee_id": 7}}',
    '{"name": "get_employee", "arguments": "{\\"employee_id\\": 7}"}',  # arguments as a string
    '{"name": "get_employee", "parameters": {"employee_id": 7}}',
    '{"function": {"name": "get_employee", "arguments": {"employee_id": 7}}}',
    '{{"name": "get_employee", "arguments": {"employee_id": 7}}}',  # Qwen2.5-Coder's braces
    'I will look that up. {"name": "get_employee", "arguments": {"employee_id": 7}}',
    '[{"name": "get_employee", "arguments": {"employee_id": 7}}]',
])
def test_text_forms(text):
    reply = parse_reply(text)
    assert [(c.name, c.arguments) for c in reply.calls] == [("get_employee", {"employee_id": 7})]
    assert reply.from_text


def test_structured_calls_win_and_arguments_may_be_strings():
    reply = parse_reply("thinking...", [{"id": "c1", "type": "function", "function": {
        "name": "a", "arguments": '{"x": 1}'}}])
    assert [(c.name, c.arguments, c.call_id) for c in reply.calls] == [("a", {"x": 1}, "c1")]
    assert reply.text == "thinking..." and not reply.from_text


def test_several_tagged_calls():
    text = ('<tool_call>{"name": "a", "arguments": {}}</tool_call>\n'
            '<tool_call>{"name": "b", "arguments": {"y": 2}}</tool_call>')
    assert [c.name for c in parse_reply(text).calls] == ["a", "b"]


def test_plain_text_is_an_answer_not_a_call():
    reply = parse_reply("Alice has 7 days left {as of today}.")
    assert reply.calls == [] and reply.text.startswith("Alice")


@pytest.mark.parametrize("text, message", [
    ('<tool_call>{"name": "a", "arguments": {"x": </tool_call>', "could not read"),
    ('{"name": "a", "arguments": "{not json}"}', "not valid JSON"),
    ('{"name": "a", "arguments": [1, 2]}', "must be a JSON object"),
    ('{"name": "a", "arguments": {"x": 1}', "looks like a tool call"),
    # the compact state prompt's source copied as the value (the 0.5B, style-hr-0.5b-compact3)
    ('{"name": "list_payslips", "arguments": {"employee_id": 80, "year": <the request\'s '
     'year>}}', "<the request's year> is where a value goes, not the value"),
    ("<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": <the request's x>}}\n</tool_call>",
     "<the request's x> is where a value goes"),
])
def test_broken_calls_raise_a_model_facing_error(text, message):
    with pytest.raises(CallParseError, match=message):
        parse_reply(text)


CALL = '{"name": "get_employee", "arguments": {"employee_id": 7}}'


@pytest.mark.parametrize(("text", "complete"), [
    (CALL, False),  # the model may still be writing
    (CALL + "\n", True),
    (CALL + '\n{"id": 7, "name": "invented result"}', True),
    ('I will look that up. ' + CALL + "\n", True),
    (CALL[:-5], False),  # not yet closed
    ('{"id": 7}\n', False),  # JSON, but not a call
    ("<tool_call>\n" + CALL + "\n", False),  # tagged: more tagged calls may follow
    ("```json\n" + CALL + "\n", False),  # a fence takes precedence
    ("The manager is Chen.\n", False),
    ('{"name": "x", "arguments": 3}\n', False),  # unreadable: the error must be seen whole
])
def test_first_call_complete(text, complete):
    assert first_call_complete(text) is complete
    if complete:  # what follows cannot change what parse_reply reads
        for tail in ("", '\n{"name": "other", "arguments": {}}', "\nDone."):
            assert [(c.name, c.arguments) for c in parse_reply(text + tail).calls] == \
                [("get_employee", {"employee_id": 7})]


def _calls_or_error(text: str) -> object:
    try:
        reply = parse_reply(text)
    except CallParseError:
        return "unreadable"
    return [(c.name, c.arguments) for c in reply.calls] or reply.text


def test_recorded_replies_cut_where_the_server_stops_parse_the_same():
    """494 distinct replies the 0.5B gave in evaluations (most before the embedded server's
    early stop existed), cut where that stop would fire, read exactly as the whole reply."""
    import json
    from pathlib import Path

    data = Path(__file__).parent / "data" / "replies-qwen2.5-coder-0.5b.jsonl"
    texts = [json.loads(line)["text"] for line in data.read_text().splitlines()]
    assert len(texts) == 494
    cut = 0
    for text in texts:
        stops = [i + 1 for i, ch in enumerate(text) if ch == "\n"
                 and first_call_complete(text[:i + 1])]
        if stops and stops[0] < len(text):
            cut += 1
            assert _calls_or_error(text[:stops[0]]) == _calls_or_error(text), text[:300]
    assert cut > 100  # these replies do run on past the stop point


def _spec(name, *params):
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {p: {"type": "string"} for p in params}}}}


# the 0.5B's replies to the compact prompt (eval/results/style-hr-0.5b-nl+track+compact)
WRAPPED = ('{"name": "find_employee", "arguments": {"properties": {"name": "Wei Baptiste"}, '
           '"required": ["name"], "type": "object"}}')


def test_arguments_wrapped_in_the_schema_are_unwrapped_when_tools_are_given():
    tools = [_spec("find_employee", "name")]
    assert parse_reply(WRAPPED, tools=tools).calls[0].arguments == {"name": "Wei Baptiste"}
    structured = [{"id": "c1", "function": {"name": "find_employee", "arguments": json.dumps(
        {"type": "object", "properties": {"name": "Ada"}})}}]
    assert parse_reply("", structured, tools).calls[0].arguments == {"name": "Ada"}
    # without the tools the parser cannot tell: the arguments stay as sent
    assert "properties" in parse_reply(WRAPPED).calls[0].arguments


@pytest.mark.parametrize("arguments", [
    # the tool takes a parameter called properties (a CRM's update_contact)
    {"properties": {"email": "a@b.c"}, "type": "object"},
    # the schema itself echoed, no values: validation's error goes back to the model
    {"type": "object", "properties": {"name": {"type": "string", "description": "full name"}}},
    # other keys beside the envelope: not a schema
    {"properties": {"name": "Ada"}, "limit": 3},
    {"type": "array", "properties": {"name": "Ada"}},
])
def test_arguments_that_are_not_a_schema_echo_stay_as_sent(arguments):
    tools = [_spec("update_contact", "properties", "type"), _spec("find_employee", "name", "limit")]
    name = "update_contact" if arguments.get("properties", {}).get("email") else "find_employee"
    text = json.dumps({"name": name, "arguments": arguments})
    assert parse_reply(text, tools=tools).calls[0].arguments == arguments

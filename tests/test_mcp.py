"""Tools from a real MCP server (stdio) join the registry and run like Python tools."""

from __future__ import annotations

import sys
import textwrap

from routine import Agent, ToolRegistry, check_routine, load_routine_text
from routine.models.testing import ScriptedModel, call
from routine.spec.project import Project
from routine.spec.toolsets import registry_for
from routine.tools.mcp import McpServer, mcp_toolset

from .conftest import ROOT

SERVER = McpServer(command=sys.executable, args=[str(ROOT / "tests" / "servers" / "calendar_mcp.py")],
                   name="calendar")


def test_mcp_tools_have_schemas_and_run_in_an_agent():
    toolset = mcp_toolset(SERVER)
    assert set(toolset.tools) == {"check_room", "cancel"}
    check = toolset.tools["check_room"]
    assert check.parameters["required"] == ["room", "day"]
    assert set(check.output_schema["properties"]) == {"room", "day", "free"}
    model = ScriptedModel([
        call("check_room", room="Atlas"),  # missing argument: validated before the call
        call("check_room", room="Atlas", day="2026-06-02"),
        call("cancel", booking_id=9),  # the server reports an error: shown to the model
        call("finish", answer="Atlas is taken."),
    ])
    trace = Agent(None, ToolRegistry(toolset), model).run("Is Atlas free on 2 June?")
    first, second, third = trace.tool_calls
    assert first.error_kind == "invalid_arguments" and "'day' is a required property" in first.error
    assert second.result == {"room": "Atlas", "day": "2026-06-02", "free": False}
    assert third.error_kind == "tool_error" and "does not exist" in third.error
    assert trace.outcome == "answered"


def test_routine_with_mcp_toolset_validates_against_server_schemas():
    text = textwrap.dedent("""
        name: room_check
        description: Check a room.
        toolsets: [calendar]
        inputs:
          room: {type: string, description: room}
        steps:
          - id: check
            name: Check
            description: Check the room.
            tool: check_room
            args: {room: "${inputs.room}", day: "2026-06-02"}
          - id: bad
            name: Bad
            description: Refers to a field the server's output schema lacks.
            tool: check_room
            args: {room: "${steps.check.output.capacity}", day: "${steps.check.output.free}"}
          - id: answer
            name: Answer
            description: Say whether it is free.
            finish: true
    """)
    loaded = load_routine_text(text, "room.yaml")
    registry, problems = registry_for(loaded, project=Project({"calendar": SERVER}))
    assert problems == []
    messages = [p.message for p in check_routine(loaded, registry)]
    assert any("has no field 'capacity'" in m for m in messages)
    assert any("type mismatch" in m and "boolean" in m for m in messages)
    assert len(messages) == 2


def test_a_conversation_over_an_mcp_server_closes_cleanly_and_stops_the_server():
    """The MCP client's cancel scopes must be left by the task that entered them: a
    conversation's messages and its close run in tasks of their own (close raised
    "Attempted to exit cancel scope in a different task")."""
    from pathlib import Path

    loaded = load_routine_text(textwrap.dedent("""
        name: room_check
        description: Check a room.
        inputs: {room: {type: string, description: the room}}
        steps:
          - {id: ask, name: Ask, description: Ask the room., ask: "Which room?", fills: [room]}
          - {id: check, name: Check, description: Check it., tool: check_room,
             args: {room: "${inputs.room}", day: "2026-06-02"}}
          - {id: done, name: Done, description: Say it., finish: true,
             message: "{{ inputs.room }}: free {{ steps.check.output.free }}"}
        """), "room_check.yaml")
    model = ScriptedModel(['{"room": null}', '{"room": "Atlas"}',
                           call("check_room", room="Atlas", day="2026-06-02")])

    def servers() -> int:  # processes running the server (its launcher included)
        count = 0
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                count += b"calendar_mcp.py" in cmdline.read_bytes()
            except OSError:  # (a process that ended meanwhile)
                continue
        return count

    before = servers()
    with Agent(loaded, ToolRegistry(mcp_toolset(SERVER)), model).conversation() as chat:
        assert chat.send("Is a room free?").status == "waiting"
        assert servers() > before
        reply = chat.send("Atlas")
    assert reply.status == "answered" and reply.text == "Atlas: free False"
    assert servers() == before  # the server stopped with the conversation


def test_a_server_s_banner_on_stdout_is_one_warning_line_not_a_traceback(tmp_path):
    banner = tmp_path / "banner_mcp.py"
    banner.write_text((ROOT / "tests" / "servers" / "calendar_mcp.py").read_text().replace(
        "server = MCPServer(", "print('Calendar server v1 starting... hello', flush=True)\n"
        "server = MCPServer(", 1))
    script = textwrap.dedent(f"""
        import sys
        from routine.tools.mcp import McpServer, mcp_toolset
        toolset = mcp_toolset(McpServer(command=sys.executable, args=[{str(banner)!r}],
                                        name="banner"))
        print(sorted(toolset.tools))
        """)
    import subprocess

    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert ran.returncode == 0 and "['cancel', 'check_room']" in ran.stdout
    assert "Traceback" not in ran.stderr
    assert "not a protocol message" in ran.stderr and "Calendar server v1" in ran.stderr


def test_the_launcher_says_nothing_when_its_status_file_is_gone(tmp_path):
    from routine.tools.mcp_launch import main as launch

    gone = tmp_path / "removed" / "status"  # the reader's folder, removed at exit
    assert launch([str(gone), sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert launch([str(gone), str(tmp_path / "no-such-server")]) == 127


def test_a_server_that_dies_mid_run_ends_the_run_naming_it_not_the_model(tmp_path):
    dying = tmp_path / "dying_mcp.py"
    dying.write_text((ROOT / "tests" / "servers" / "calendar_mcp.py").read_text().replace(
        '    raise ToolError(f"booking {booking_id} does not exist")',
        "    import os\n    os._exit(3)"))
    toolset = mcp_toolset(McpServer(command=sys.executable, args=[str(dying)], name="dying"))
    model = ScriptedModel([call("cancel", booking_id=1),
                           call("check_room", room="Atlas", day="2026-06-02")])
    trace = Agent(None, ToolRegistry(toolset), model).run("Cancel booking 1")
    assert trace.outcome == "failed" and trace.failure_kind == "toolset"
    assert "dying_mcp.py` stopped during the run (exit status 3)" in trace.failure
    assert len(model.requests) == 1  # not offered to the model again and again

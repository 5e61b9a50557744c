"""Gold data for the helpdesk: query templates, filled with real rows of the seeded database.

``routine dataset build eval/helpdesk`` samples each template ``count`` times, runs the
routine with the oracle (the executor, following every step's references) to get the
gold calls and the gold end state, and writes train/dev/test.jsonl. Splits are by
template: a template's queries are all in its split, so no test phrasing is trained on.
See the README's guide ("Add gold data") for every field.
"""

from __future__ import annotations

import random
from typing import Any

from routine.eval.dataset import Domain, Template

PROBLEMS = ["my laptop does not start", "the VPN keeps disconnecting",
            "I cannot print to the second floor printer", "my email stopped syncing",
            "the shared drive says access denied"]


def sample_user(deps: Any, rng: random.Random) -> dict[str, Any] | None:
    """Pick a real user and a problem. Keys that name routine inputs become its inputs."""
    users = deps.conn.execute("SELECT name, email FROM users ORDER BY id").fetchall()
    user = rng.choice(users)
    return {"name": user["name"], "email": user["email"], "summary": rng.choice(PROBLEMS)}


def sample_urgent(deps: Any, rng: random.Random) -> dict[str, Any] | None:
    return {**sample_user(deps, rng), "priority": "high"}  # type: ignore[dict-item]


def answer_ticket(values: dict[str, Any], outputs: dict[str, Any]) -> tuple[str, list[str]]:
    """The reference answer and the facts a right answer must state (here: the ticket id).
    ``outputs`` maps each step id to the result the oracle's run got."""
    ticket = outputs["open_ticket"]
    return (f"Ticket {ticket['ticket_id']} is open ({ticket['priority']} priority).",
            [str(ticket["ticket_id"])])


TEMPLATES = [
    Template(
        id="tickets.open.plain", scenario="tickets", split="train", routine="open_ticket",
        phrasings=["Hi, {summary}. My email is {email}.",
                   "{email} here: {summary}, can you open a ticket?",
                   "Please log a ticket for me ({email}): {summary}."],
        sample=sample_user, answer=answer_ticket, count=5),
    Template(
        id="tickets.open.urgent", scenario="tickets", split="test", routine="open_ticket",
        phrasings=["Urgent, {summary}! I'm {email}.",
                   "This is high priority: {summary}. Email {email}.",
                   "{name} ({email}) here, {summary} and it's urgent."],
        sample=sample_urgent, answer=answer_ticket, count=5),
]

DOMAIN = Domain(
    name="helpdesk",
    toolsets=["helpdesk"],           # names from routine.toml [toolsets]
    routines_dir="routines",          # relative to routine.toml
    templates=TEMPLATES,
    seed=1,
    # free text: the words the model chooses for a summary need not be the gold ones.
    # Arguments are matched by mode (fuzzy: half the words in common), and the column
    # they fill is compared the same way in the end state; every other column exactly.
    arg_modes={"open_ticket.summary": "fuzzy"},
    free_text={"tickets.summary": "open_ticket.summary"},
)

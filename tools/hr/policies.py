"""Policies: the employee handbook and company announcements."""

from __future__ import annotations

import datetime as dt
import re

from pydantic import BaseModel

from routine import RunContext

from ._toolset import toolset
from .db import HRDatabase

__all__ = ["HandbookHit", "HandbookSection", "Announcement", "search_handbook",
           "get_handbook_section", "list_announcements"]

MAX_HITS = 5
TITLE_WEIGHT = 3.0
_WORD_RE = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an and are as at be been by can could do does for from get got have how i if in is it "
    "its me my of on or our should so that the their them there this to us was we what when "
    "where which who why will with would you your about any policy rule rules".split())


class HandbookHit(BaseModel):
    section_id: str
    title: str
    score: float


class HandbookSection(BaseModel):
    section_id: str
    title: str
    text: str


class Announcement(BaseModel):
    id: int
    date: dt.date
    title: str
    body: str


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The words of ``text`` that count for search: lower-case, no stop words, plurals folded."""
    return [_stem(w) for w in _WORD_RE.findall(text.lower()) if w not in _STOPWORDS]


def score(query_terms: set[str], title: str, text: str) -> float:
    """Keyword overlap: per query word, 3 when the title has it, plus 1 when the text has it
    and 0.2 for each further occurrence (at most 4 more)."""
    title_terms = set(terms(title))
    counts: dict[str, int] = {}
    for word in terms(text):
        counts[word] = counts.get(word, 0) + 1
    total = 0.0
    for word in query_terms:
        if word in title_terms:
            total += TITLE_WEIGHT
        if counts.get(word):
            total += 1.0 + 0.2 * min(counts[word] - 1, 4)
    return round(total, 2)


@toolset.tool
def search_handbook(ctx: RunContext[HRDatabase], query: str) -> list[HandbookHit]:
    """Search the employee handbook by keywords; returns up to five sections, best match first.

    Read a section's full text with get_handbook_section.

    Args:
        query: a few keywords about the topic, in plain words.
    """
    wanted = set(terms(query))
    if not query.strip():
        raise ValueError("query is empty: give a few keywords about the topic")
    if not wanted:
        raise ValueError(f"query {query!r} has no searchable words: use more specific keywords")
    rows = ctx.deps.conn.execute(
        "SELECT section_id, title, text FROM handbook_sections ORDER BY section_id").fetchall()
    hits = [HandbookHit(section_id=r["section_id"], title=r["title"],
                        score=score(wanted, r["title"], r["text"])) for r in rows]
    hits = sorted((h for h in hits if h.score > 0), key=lambda h: (-h.score, h.section_id))
    if not hits:
        titles = "; ".join(f"{r['section_id']} ({r['title']})" for r in rows)
        raise LookupError(f"no handbook section matches {query!r}; the sections are: {titles}")
    return hits[:MAX_HITS]


@toolset.tool
def get_handbook_section(ctx: RunContext[HRDatabase], section_id: str) -> HandbookSection:
    """Get the full text of one handbook section.

    Args:
        section_id: the section's id, as returned by search_handbook.
    """
    conn = ctx.deps.conn
    row = conn.execute("SELECT section_id, title, text FROM handbook_sections"
                       " WHERE section_id = ?", (section_id.strip().lower(),)).fetchone()
    if row is None:
        known = ", ".join(r["section_id"] for r in conn.execute(
            "SELECT section_id FROM handbook_sections ORDER BY section_id"))
        raise LookupError(f"no handbook section {section_id!r}; section ids: {known}")
    return HandbookSection(**dict(row))


@toolset.tool
def list_announcements(ctx: RunContext[HRDatabase], limit: int = 5) -> list[Announcement]:
    """List the latest company announcements, newest first.

    Args:
        limit: how many announcements to return, from 1 to 20.
    """
    if not 1 <= limit <= 20:
        raise ValueError(f"limit must be between 1 and 20 (got {limit})")
    db = ctx.deps
    rows = db.conn.execute(
        "SELECT id, date, title, body FROM announcements WHERE date <= ?"
        " ORDER BY date DESC, id DESC LIMIT ?", (db.today.isoformat(), limit)).fetchall()
    return [Announcement(**dict(r)) for r in rows]

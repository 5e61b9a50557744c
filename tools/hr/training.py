"""Training and onboarding: the course catalogue, enrolments and new joiners' checklists."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel

from routine import RunContext

from ._toolset import require_employee, toolset
from .db import HRDatabase

__all__ = ["Course", "Enrollment", "ChecklistItem", "list_training_courses",
           "enroll_in_course", "get_onboarding_checklist", "complete_onboarding_task"]


class Course(BaseModel):
    course_id: int
    title: str
    topic: str
    start_date: date
    seats_left: int


class Enrollment(BaseModel):
    enrollment_id: int
    employee_id: int
    course_id: int
    course_title: str
    start_date: date
    status: str


class ChecklistItem(BaseModel):
    item_id: int
    task: str
    done: bool


_COURSE_SQL = (
    "SELECT c.id AS course_id, c.title, c.topic, c.start_date, c.capacity -"
    " (SELECT COUNT(*) FROM enrollments e WHERE e.course_id = c.id"
    "  AND e.status IN ('enrolled', 'completed')) AS seats_left FROM courses c "
)


@toolset.tool
def list_training_courses(ctx: RunContext[HRDatabase], topic: str = "") -> list[Course]:
    """List the training courses that have not started yet, soonest first, with the seats left.

    An empty list means no upcoming course matches the topic.

    Args:
        topic: a word to filter by, matched against each course's topic and title; empty for all courses.
    """
    db = ctx.deps
    needle = topic.strip().lower()
    rows = db.conn.execute(
        _COURSE_SQL + "WHERE c.start_date > ? AND (? = '' OR instr(lower(c.topic), ?) > 0"
        " OR instr(lower(c.title), ?) > 0) ORDER BY c.start_date, c.id",
        (db.today.isoformat(), needle, needle, needle)).fetchall()
    return [Course(**dict(r)) for r in rows]


@toolset.tool
def enroll_in_course(ctx: RunContext[HRDatabase], employee_id: int, course_id: int) -> Enrollment:
    """Enrol an employee in a training course that has not started yet and has a seat left.

    Args:
        employee_id: the employee's numeric id (from find_employee).
        course_id: the course's numeric id (from list_training_courses).
    """
    db = ctx.deps
    require_employee(db, employee_id)
    course = db.conn.execute(_COURSE_SQL + "WHERE c.id = ?", (course_id,)).fetchone()
    if course is None:
        raise LookupError(f"no course with id {course_id}; use list_training_courses")
    if course["start_date"] <= db.today.isoformat():
        raise ValueError(f"course {course_id} ({course['title']}) started on "
                         f"{course['start_date']}; enrolment is closed")
    mine = db.conn.execute("SELECT status FROM enrollments WHERE employee_id = ? AND course_id = ?",
                           (employee_id, course_id)).fetchone()
    if mine is not None:
        raise ValueError(f"employee {employee_id} is already enrolled in course {course_id} "
                         f"({course['title']})")
    if course["seats_left"] <= 0:
        raise ValueError(f"course {course_id} ({course['title']}, {course['start_date']}) is "
                         "full: no seats left")
    with db.conn:
        cur = db.conn.execute(
            "INSERT INTO enrollments (employee_id, course_id, status) VALUES (?, ?, 'enrolled')",
            (employee_id, course_id))
    return Enrollment(enrollment_id=int(cur.lastrowid or 0), employee_id=employee_id,
                      course_id=course_id, course_title=course["title"],
                      start_date=course["start_date"], status="enrolled")


@toolset.tool
def get_onboarding_checklist(
    ctx: RunContext[HRDatabase], employee_id: int
) -> list[ChecklistItem]:
    """Get a recently hired employee's onboarding checklist: each task and whether it is done.

    Args:
        employee_id: the employee's numeric id (from find_employee).
    """
    db = ctx.deps
    name = require_employee(db, employee_id)
    rows = db.conn.execute("SELECT id AS item_id, task, done FROM onboarding_items"
                           " WHERE employee_id = ? ORDER BY id", (employee_id,)).fetchall()
    if not rows:
        raise LookupError(f"employee {employee_id} ({name}) has no onboarding checklist; only "
                          "recently hired employees have one")
    return [ChecklistItem(**dict(r)) for r in rows]


@toolset.tool
def complete_onboarding_task(
    ctx: RunContext[HRDatabase], employee_id: int, item_id: int
) -> ChecklistItem:
    """Mark a task of an employee's onboarding checklist as done.

    Args:
        employee_id: the employee's numeric id (from find_employee).
        item_id: the checklist item's numeric id (from get_onboarding_checklist).
    """
    db = ctx.deps
    require_employee(db, employee_id)
    row = db.conn.execute("SELECT id AS item_id, employee_id, task, done FROM onboarding_items"
                          " WHERE id = ?", (item_id,)).fetchone()
    if row is None or row["employee_id"] != employee_id:
        raise LookupError(f"item {item_id} is not on employee {employee_id}'s onboarding "
                          "checklist; use get_onboarding_checklist to see its items")
    if row["done"]:
        raise ValueError(f"item {item_id} ({row['task']}) is already done")
    with db.conn:
        db.conn.execute("UPDATE onboarding_items SET done = 1 WHERE id = ?", (item_id,))
    return ChecklistItem(item_id=item_id, task=row["task"], done=True)

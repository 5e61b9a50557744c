"""People: employees and departments."""

from __future__ import annotations

from pydantic import BaseModel

from routine import RunContext

from ._toolset import toolset
from .db import HRDatabase

__all__ = ["Employee", "Department", "find_employee", "get_employee", "get_department"]


class Employee(BaseModel):
    id: int
    name: str
    email: str
    title: str
    department: str
    department_id: int
    manager_id: int | None


class Department(BaseModel):
    id: int
    name: str
    head_id: int | None
    employee_count: int


_EMPLOYEE_SQL = (
    "SELECT e.id, e.name, e.email, e.title, d.name AS department, e.department_id, e.manager_id "
    "FROM employees e JOIN departments d ON d.id = e.department_id "
)


@toolset.tool
def find_employee(ctx: RunContext[HRDatabase], name: str) -> Employee:
    """Find an employee by full name (case-insensitive) and return their record.

    Args:
        name: the employee's full name, as written in the request.
    """
    rows = ctx.deps.conn.execute(
        _EMPLOYEE_SQL + "WHERE lower(e.name) = lower(?)", (name.strip(),)
    ).fetchall()
    if not rows:
        rows = ctx.deps.conn.execute(
            _EMPLOYEE_SQL + "WHERE lower(e.name) LIKE lower(?) ORDER BY e.id LIMIT 6",
            (f"%{name.strip()}%",),
        ).fetchall()
    if not rows:
        raise LookupError(f"no employee named {name!r}")
    if len(rows) > 1:
        names = ", ".join(r["name"] for r in rows[:5])
        raise LookupError(f"{name!r} matches several employees ({names}); give the full name")
    return Employee(**dict(rows[0]))


@toolset.tool
def get_employee(ctx: RunContext[HRDatabase], employee_id: int) -> Employee:
    """Get an employee's record by id.

    Args:
        employee_id: the employee's numeric id.
    """
    row = ctx.deps.conn.execute(_EMPLOYEE_SQL + "WHERE e.id = ?", (employee_id,)).fetchone()
    if row is None:
        raise LookupError(f"no employee with id {employee_id}")
    return Employee(**dict(row))


@toolset.tool
def get_department(ctx: RunContext[HRDatabase], department_id: int) -> Department:
    """Get a department: its name, the employee id of its head and how many people work in it.

    Args:
        department_id: the department's numeric id; an unknown id lists the departments.
    """
    conn = ctx.deps.conn
    row = conn.execute(
        "SELECT d.id, d.name, d.head_id,"
        " (SELECT COUNT(*) FROM employees e WHERE e.department_id = d.id) AS employee_count"
        " FROM departments d WHERE d.id = ?",
        (department_id,),
    ).fetchone()
    if row is None:
        known = ", ".join(f"{r['id']} {r['name']}"
                          for r in conn.execute("SELECT id, name FROM departments ORDER BY id"))
        raise LookupError(f"no department with id {department_id}; departments: {known}")
    return Department(**dict(row))

"""The benchmark's tasks: HR-shaped routines, their tools, and the script of each.

The tools are plain typed functions over fixed data, the same functions in every
framework (the peers get them wrapped to return the JSON text Routine shows), so every
framework does the same tool work. Each task has a routine (what Routine runs), the
request, and the calls a model makes for it, in order, with the final answer: the
scripted server plays them, and each run is checked against them.

* ``leave_balance`` — the 3-request task: look the employee up, read the balance, answer;
* ``book_leave`` — a branch the model decides (days left: book; none: explain);
* ``payslip_policy`` — two long results (a payslip, a policy) that Routine keeps in
  variable memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from routine_tools.hr.leave import LeaveBalance, LeaveRequest
from routine_tools.hr.people import Employee
from routine_tools.hr.policies import HandbookSection

__all__ = ["Task", "TASKS", "TOOLS", "CallLog", "instructions", "script"]


class Payslip(BaseModel):
    """A payslip with its lines (long: Routine keeps it in variable memory)."""

    employee_id: int
    month: str
    gross: float
    net: float
    lines: list[dict[str, Any]]


_EMPLOYEES = {"Arjun Garcia": Employee(
    id=1, name="Arjun Garcia", email="arjun.garcia@example.com", title="Head of Engineering",
    department="Engineering", department_id=1, manager_id=None),
              "Chen Okafor": Employee(
    id=7, name="Chen Okafor", email="chen.okafor@example.com", title="Data Analyst",
    department="Finance", department_id=3, manager_id=5)}
_POLICY_TEXT = " ".join(
    f"Section {n}. Expenses of category {n} are reimbursed within 30 days when a receipt is "
    f"attached and the amount stays under the limit of the employee's grade." for n in range(1, 16))


class CallLog:
    """The calls the tools received in the current run (checked against the script)."""

    calls: list[tuple[str, dict[str, Any]]] = []

    @classmethod
    def reset(cls) -> None:
        cls.calls = []


def find_employee(name: str) -> Employee:
    """Look an employee up by full name.

    Args:
        name: the employee's full name.
    """
    CallLog.calls.append(("find_employee", {"name": name}))
    return _EMPLOYEES[name]


def get_leave_balance(employee_id: int, leave_type: str = "annual") -> LeaveBalance:
    """Get an employee's leave balance for one leave type.

    Args:
        employee_id: the employee's id.
        leave_type: annual, sick, parental or unpaid.
    """
    CallLog.calls.append(("get_leave_balance", {"employee_id": employee_id,
                                                "leave_type": leave_type}))
    return LeaveBalance(employee_id=employee_id, leave_type=leave_type, entitled=25.0,
                        taken=18.0, remaining=7.0)


def submit_leave_request(employee_id: int, leave_type: str, start_date: str,
                         end_date: str) -> LeaveRequest:
    """Book leave for an employee.

    Args:
        employee_id: the employee's id.
        leave_type: annual, sick, parental or unpaid.
        start_date: first day, YYYY-MM-DD.
        end_date: last day, YYYY-MM-DD.
    """
    CallLog.calls.append(("submit_leave_request", {
        "employee_id": employee_id, "leave_type": leave_type, "start_date": start_date,
        "end_date": end_date}))
    return LeaveRequest(request_id=41, employee_id=employee_id, leave_type=leave_type,
                        start_date=start_date, end_date=end_date, days=3.0, status="pending")


def get_payslip(employee_id: int, month: str) -> Payslip:
    """Get an employee's payslip for a month.

    Args:
        employee_id: the employee's id.
        month: the month, YYYY-MM.
    """
    CallLog.calls.append(("get_payslip", {"employee_id": employee_id, "month": month}))
    lines = [{"item": f"line {n}", "kind": "deduction" if n % 3 else "earning",
              "amount": round(100.0 + 7.5 * n, 2)} for n in range(1, 25)]
    return Payslip(employee_id=employee_id, month=month, gross=6200.0, net=4310.55, lines=lines)


def get_policy(topic: str) -> HandbookSection:
    """Get the company policy on a topic.

    Args:
        topic: e.g. expenses, remote work, leave.
    """
    CallLog.calls.append(("get_policy", {"topic": topic}))
    return HandbookSection(section_id=f"{topic}-1", title=f"{topic.title()} policy",
                           text=_POLICY_TEXT)


TOOLS = [find_employee, get_leave_balance, submit_leave_request, get_payslip, get_policy]


@dataclass(frozen=True)
class Task:
    """One task: its routine, the request, the calls a model makes, the answer."""

    name: str
    routine: str  # YAML
    query: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answer: str = ""

    @property
    def requests(self) -> int:
        """Model requests a run makes: one per call, one for the answer."""
        return len(self.calls) + 1

    def tools(self) -> list[Any]:
        names = {name for name, _ in self.calls}
        return [t for t in TOOLS if t.__name__ in names or t.__name__ in self.routine]


_HEAD = "toolsets: [bench]\n"
_FIND = """  - id: find_employee
    name: Find the employee
    description: Look the employee up by their full name.
    tool: find_employee
    args: {name: "${inputs.employee_name}"}
"""

TASKS = [
    Task("leave_balance", """
name: leave_balance
description: Tell an employee how many days of a leave type they have left.
""" + _HEAD + """
inputs:
  employee_name: {type: string, description: "the employee's full name"}
  leave_type: {type: string, description: "annual, sick, parental or unpaid",
               required: false, default: annual, enum: [annual, sick, parental, unpaid]}
steps:
  - id: find_employee
    name: Find the employee
    description: Look the employee up by their full name to get their employee id.
    tool: find_employee
    args: {name: "${inputs.employee_name}"}
  - id: check_balance
    name: Check the leave balance
    description: Get the leave balance of that employee for the requested leave type.
    tool: get_leave_balance
    args: {employee_id: "${steps.find_employee.output.id}", leave_type: "${inputs.leave_type}"}
  - id: answer
    name: Answer
    description: Tell the user how many days are left, out of how many entitled.
    finish: true
""", "How many annual leave days does Arjun Garcia have left?",
         [("find_employee", {"name": "Arjun Garcia"}),
          ("get_leave_balance", {"employee_id": 1, "leave_type": "annual"})],
         "Arjun Garcia has 7 of 25 annual leave days left."),
    Task("book_leave", """
name: book_leave
description: Book annual leave for an employee if they have days left.
""" + _HEAD + """
inputs:
  employee_name: {type: string, description: "the employee's full name"}
  start_date: {type: string, description: "first day, YYYY-MM-DD"}
  end_date: {type: string, description: "last day, YYYY-MM-DD"}
steps:
""" + _FIND + """  - id: check_balance
    name: Check the balance
    description: Get the employee's annual leave balance.
    tool: get_leave_balance
    args: {employee_id: "${steps.find_employee.output.id}", leave_type: annual}
  - id: decide
    name: Decide
    description: Book the leave only if days are left.
    branch:
      - condition: days are left
        steps:
          - id: book
            name: Book the leave
            description: Submit the leave request for the requested dates.
            tool: submit_leave_request
            args: {employee_id: "${steps.find_employee.output.id}", leave_type: annual,
                   start_date: "${inputs.start_date}", end_date: "${inputs.end_date}"}
          - id: confirm
            name: Confirm
            description: Tell the user the request id and the dates.
            finish: true
      - condition: no days are left
        steps:
          - id: explain
            name: Explain
            description: Tell the user no days are left.
            finish: true
""", "Please book annual leave for Chen Okafor from 2026-12-21 to 2026-12-23.",
         [("find_employee", {"name": "Chen Okafor"}),
          ("get_leave_balance", {"employee_id": 7, "leave_type": "annual"}),
          ("submit_leave_request", {"employee_id": 7, "leave_type": "annual",
                                    "start_date": "2026-12-21", "end_date": "2026-12-23"})],
         "Booked: request 41, annual leave from 2026-12-21 to 2026-12-23 (pending approval)."),
    Task("payslip_policy", """
name: payslip_policy
description: Explain an employee's expense reimbursement on their payslip with the policy.
""" + _HEAD + """
inputs:
  employee_name: {type: string, description: "the employee's full name"}
  month: {type: string, description: "the month, YYYY-MM"}
steps:
""" + _FIND + """  - id: payslip
    name: Get the payslip
    description: Get the employee's payslip for the month.
    tool: get_payslip
    args: {employee_id: "${steps.find_employee.output.id}", month: "${inputs.month}"}
  - id: policy
    name: Get the expenses policy
    description: Get the company's expenses policy.
    tool: get_policy
    args: {topic: expenses}
  - id: answer
    name: Answer
    description: Explain the payslip's reimbursement lines with the policy.
    finish: true
""", "Why was Arjun Garcia's expense reimbursement on the 2026-11 payslip what it was?",
         [("find_employee", {"name": "Arjun Garcia"}),
          ("get_payslip", {"employee_id": 1, "month": "2026-11"}),
          ("get_policy", {"topic": "expenses"})],
         "The 2026-11 payslip reimburses expenses under section 1 of the expenses policy."),
]


def script(tasks: list[Task] = TASKS) -> dict[str, list[dict[str, Any]]]:
    """The scripted server's replies: ``{query: [reply, ...]}``."""
    return {t.query: [{"call": name, "arguments": args} for name, args in t.calls]
            + [{"answer": t.answer}] for t in tasks}


def instructions(task: Task) -> str:
    """What the peers are told: the routine's own text (its description and each step's
    name and description), as a user of those frameworks would write the process down."""
    import yaml

    data = yaml.safe_load(task.routine)
    lines = [data["description"], "Steps:"]

    def walk(steps: list[dict[str, Any]], prefix: str) -> None:
        for n, step in enumerate(steps, 1):
            lines.append(f"{prefix}{n}. {step['name']}: {step['description']}")
            for m, option in enumerate(step.get("branch") or [], 1):
                lines.append(f"{prefix}{n}.{m} If {option['condition']}:")
                walk(option["steps"], f"{prefix}{n}.{m}.")

    walk(data["steps"], "")
    return "\n".join(lines)


def as_json_text(function: Any) -> Any:
    """``function`` returning the JSON text Routine shows the model (the peers' tools)."""
    import functools

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> str:
        return json.dumps(function(*args, **kwargs).model_dump(mode="json"), ensure_ascii=False)

    wrapper.__annotations__ = {**function.__annotations__, "return": str}
    return wrapper

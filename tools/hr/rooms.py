"""Rooms: meeting rooms and their bookings."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel

from routine import RunContext

from ._toolset import not_in_past, parse_time, require_employee, toolset
from .db import HRDatabase

__all__ = ["Room", "Booking", "find_available_rooms", "book_room", "cancel_room_booking"]


class Room(BaseModel):
    room_id: int
    name: str
    capacity: int
    floor: int


class Booking(BaseModel):
    booking_id: int
    room_id: int
    room_name: str
    employee_id: int
    date: dt.date
    start_time: str
    end_time: str
    title: str
    status: Literal["booked", "cancelled"]


_BOOKING_SQL = ("SELECT b.id AS booking_id, b.room_id, r.name AS room_name, b.employee_id, b.date,"
                " b.start_time, b.end_time, b.title, b.status"
                " FROM room_bookings b JOIN rooms r ON r.id = b.room_id ")


def _period(db: HRDatabase, day: dt.date, start_time: str, end_time: str) -> tuple[str, str]:
    start, end = parse_time(start_time, "start_time"), parse_time(end_time, "end_time")
    if end <= start:
        raise ValueError(f"end_time {end} is not after start_time {start}")
    not_in_past(db, day, "date")
    return start, end


@toolset.tool
def find_available_rooms(
    ctx: RunContext[HRDatabase],
    date: dt.date,
    start_time: str,
    end_time: str,
    capacity: int = 1,
) -> list[Room]:
    """Find the meeting rooms that are free for a whole period and hold enough people.

    The smallest rooms come first; an empty list means no room fits.

    Args:
        date: the day of the meeting (YYYY-MM-DD), today or later.
        start_time: when the meeting starts, 24-hour HH:MM.
        end_time: when the meeting ends, 24-hour HH:MM, after start_time.
        capacity: how many people will attend.
    """
    db = ctx.deps
    start, end = _period(db, date, start_time, end_time)
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1 (got {capacity})")
    rows = db.conn.execute(
        "SELECT r.id AS room_id, r.name, r.capacity, r.floor FROM rooms r"
        " WHERE r.capacity >= ? AND NOT EXISTS (SELECT 1 FROM room_bookings b"
        "  WHERE b.room_id = r.id AND b.date = ? AND b.status = 'booked'"
        "  AND b.start_time < ? AND b.end_time > ?)"
        " ORDER BY r.capacity, r.id",
        (capacity, date.isoformat(), end, start)).fetchall()
    return [Room(**dict(r)) for r in rows]


@toolset.tool
def book_room(
    ctx: RunContext[HRDatabase],
    employee_id: int,
    room_id: int,
    date: dt.date,
    start_time: str,
    end_time: str,
    title: str,
) -> Booking:
    """Book a meeting room for an employee; the room must be free for the whole period.

    Args:
        employee_id: the numeric id of the employee who books (from find_employee).
        room_id: the room's numeric id (from find_available_rooms).
        date: the day of the meeting (YYYY-MM-DD), today or later.
        start_time: when the meeting starts, 24-hour HH:MM.
        end_time: when the meeting ends, 24-hour HH:MM, after start_time.
        title: a short title for the meeting.
    """
    db = ctx.deps
    require_employee(db, employee_id)
    start, end = _period(db, date, start_time, end_time)
    if not title.strip():
        raise ValueError("title is empty: give the meeting a short title")
    room = db.conn.execute("SELECT id, name FROM rooms WHERE id = ?", (room_id,)).fetchone()
    if room is None:
        count = db.conn.execute("SELECT COUNT(*) FROM rooms").fetchone()[0]
        raise LookupError(f"no room with id {room_id}; rooms are numbered 1 to {count}")
    clash = db.conn.execute(
        "SELECT start_time, end_time FROM room_bookings WHERE room_id = ? AND date = ?"
        " AND status = 'booked' AND start_time < ? AND end_time > ? ORDER BY start_time",
        (room_id, date.isoformat(), end, start)).fetchone()
    if clash is not None:
        raise ValueError(f"room {room_id} ({room['name']}) is already booked from "
                         f"{clash['start_time']} to {clash['end_time']} on {date}; "
                         "use find_available_rooms to find a free room")
    with db.conn:
        cur = db.conn.execute(
            "INSERT INTO room_bookings (room_id, employee_id, date, start_time, end_time, title,"
            " status) VALUES (?, ?, ?, ?, ?, ?, 'booked')",
            (room_id, employee_id, date.isoformat(), start, end, title.strip()))
    return Booking(booking_id=int(cur.lastrowid or 0), room_id=room_id, room_name=room["name"],
                   employee_id=employee_id, date=date, start_time=start, end_time=end,
                   title=title.strip(), status="booked")


@toolset.tool
def cancel_room_booking(ctx: RunContext[HRDatabase], booking_id: int) -> Booking:
    """Cancel a meeting room booking so the room becomes free again.

    Args:
        booking_id: the booking's number (from book_room).
    """
    db = ctx.deps
    row = db.conn.execute(_BOOKING_SQL + "WHERE b.id = ?", (booking_id,)).fetchone()
    if row is None:
        raise LookupError(f"no room booking with number {booking_id}")
    if row["status"] == "cancelled":
        raise ValueError(f"booking {booking_id} is already cancelled")
    if row["date"] < db.today.isoformat():
        raise ValueError(f"booking {booking_id} was on {row['date']}, in the past "
                         f"(today is {db.today}); it can no longer be cancelled")
    with db.conn:
        db.conn.execute("UPDATE room_bookings SET status = 'cancelled' WHERE id = ?",
                        (booking_id,))
    return Booking(**{**dict(row), "status": "cancelled"})

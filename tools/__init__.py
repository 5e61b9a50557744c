"""Sample enterprise tools for Routine's scenarios (plain typed functions over SQLite)."""

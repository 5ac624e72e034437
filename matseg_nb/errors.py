"""User-facing errors: the CLI prints them as one line per problem and exits 2 (no traceback)."""

from __future__ import annotations


class UserError(Exception):
    """An error caused by user input (a file, a field, a path), not by a bug.

    ``problems`` holds one human-readable line per problem, each naming the file or
    field, what was expected and what was found.
    """

    def __init__(self, *problems: str) -> None:
        self.problems = [p for p in problems if p] or ["unknown error"]
        super().__init__("\n".join(self.problems))

"""A problem found in a project's files: what every check reports (validate, automations, boundaries, the server
checks), one line naming the file, the deployment and the field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    deployment: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.deployment}: " if self.deployment else f"{self.file}: "
        return f"{where}{self.field}: {self.message}" if self.field else f"{where}{self.message}"

"""Remembers which licenses the user accepted (``license_accepted.json`` in the cache folder)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from UniversalSegLib.io.atomic import atomic_write_text

LICENSE_FILE_NAME = "license_accepted.json"


class LicenseStore:
    """Reads and writes the accepted licenses of one cache folder.

    The file maps a license id (e.g. ``"CC BY-NC-ND 4.0"``) to when and for which URL it was accepted.
    """

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / LICENSE_FILE_NAME

    def accepted(self) -> dict[str, dict]:
        """All accepted licenses; an unreadable file counts as none accepted."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def is_accepted(self, license_id: str) -> bool:
        return license_id in self.accepted()

    def accept(self, license_id: str, url: str = "") -> None:
        """Record that ``license_id`` was accepted (written atomically)."""
        data = self.accepted()
        data[license_id] = {"accepted_at": datetime.now(timezone.utc).isoformat(), "url": url}
        atomic_write_text(self.path, json.dumps(data, indent=2), overwrite=True)

    def revoke(self, license_id: str | None = None) -> None:
        """Forget one accepted license, or all of them."""
        if license_id is None:
            self.path.unlink(missing_ok=True)
            return
        data = self.accepted()
        if data.pop(license_id, None) is not None:
            self.path.write_text(json.dumps(data, indent=2), encoding="utf-8")

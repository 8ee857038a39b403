"""The weights catalog: downloadable items (model weights, the demo CT) and their licenses.

The catalog ships as ``UniversalSegLib/resources/weights_catalog.json``. Each item has a ``file_name``,
a ``url`` (an original URL, verbatim), an optional ``sha256`` (``null`` = not verified, a warning is
logged) and ``size``, and a ``license`` id described in the ``licenses`` table.

URLs can be overridden (mirrors, tests), highest priority first:

- ``UNIVERSALSEG_WEIGHTS_URL_<NAME>``: the full URL of one item; ``<NAME>`` is the item name in upper
  case with non-alphanumerics as ``_`` (``UNIVERSALSEG_WEIGHTS_URL_SWINUNETR``,
  ``UNIVERSALSEG_WEIGHTS_URL_SAMPLE_CT``).
- ``UNIVERSALSEG_WEIGHTS_BASE_URL``: a base URL for every item; the item's ``file_name`` is appended.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

URL_ENV_PREFIX = "UNIVERSALSEG_WEIGHTS_URL_"
BASE_URL_ENV = "UNIVERSALSEG_WEIGHTS_BASE_URL"


@dataclass(frozen=True)
class LicenseInfo:
    """A license that items refer to by id."""

    id: str
    url: str
    text: str
    requires_acceptance: bool


@dataclass(frozen=True)
class WeightsItem:
    """One downloadable file of the catalog."""

    name: str
    kind: str
    file_name: str
    url: str
    sha256: str | None
    size: int | None
    license: LicenseInfo | None
    description: str = ""
    backbone: str | None = None

    def effective_url(self, environ: dict[str, str] | None = None) -> str:
        """The URL to download from, after the environment overrides."""
        env = os.environ if environ is None else environ
        override = env.get(url_env_var(self.name))
        if override:
            return override
        base = env.get(BASE_URL_ENV)
        if base:
            return base.rstrip("/") + "/" + self.file_name
        return self.url


def url_env_var(name: str) -> str:
    """The environment variable that overrides the URL of item ``name``."""
    return URL_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


@dataclass(frozen=True)
class WeightsCatalog:
    """Items by name, and the name of the default model."""

    items: dict[str, WeightsItem]
    default_model: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WeightsCatalog:
        licenses = {
            license_id: LicenseInfo(
                id=license_id,
                url=info.get("url", ""),
                text=info.get("text", ""),
                requires_acceptance=bool(info.get("requires_acceptance", False)),
            )
            for license_id, info in data.get("licenses", {}).items()
        }
        items = {}
        for name, entry in data["items"].items():
            license_id = entry.get("license")
            if license_id is not None and license_id not in licenses:
                raise ValueError(f"weights catalog item {name!r}: license {license_id!r} is not described")
            sha256 = entry.get("sha256")
            items[name] = WeightsItem(
                name=name,
                kind=entry.get("kind", "model"),
                file_name=entry["file_name"],
                url=entry["url"],
                sha256=sha256.lower() if sha256 else None,
                size=entry.get("size"),
                license=licenses.get(license_id) if license_id else None,
                description=entry.get("description", ""),
                backbone=entry.get("backbone"),
            )
        return cls(items=items, default_model=data.get("default_model", next(iter(items))))

    @classmethod
    def load(cls, path: str | Path | None = None) -> WeightsCatalog:
        """Read a catalog JSON file; the packaged one when ``path`` is ``None``."""
        if path is None:
            text = (
                resources.files("UniversalSegLib")
                .joinpath("resources/weights_catalog.json")
                .read_text(encoding="utf-8")
            )
        else:
            text = Path(path).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))

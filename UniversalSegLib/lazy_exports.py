"""Lazy package attributes (PEP 562), so that importing a package does not import all its parts."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, attributes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``attributes[name]`` (a module path) on first access.

    Args:
        package: the ``__name__`` of the package defining ``__getattr__``.
        attributes: exported name → module that defines it.
    """

    def module_getattr(name: str) -> Any:
        module_name = attributes.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_name), name)
        setattr(sys.modules[package], name, value)
        return value

    return module_getattr

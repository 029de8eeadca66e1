"""The shape of Lectr's own YAML files: a mapping with one key that holds a list.

`rules:` (lectr/common/rules.py) and `prices:` (lectr/prices/pricefile.py) are read the same way, so a
broken document is reported the same way: the file, and what is wrong with it.
"""

from __future__ import annotations

import yaml


def list_under(key: str, text: str, source: str, error: type[Exception]) -> list | None:
    """The list under `key`; None for an empty document. Raises `error` saying what is wrong."""
    try:
        doc = yaml.safe_load(text)
    except RecursionError as e:
        raise error(f"{source}: not valid YAML: nested too deeply") from e
    except Exception as e:  # PyYAML also raises ValueError, KeyError... (`2024-02-30`, `!!bool x`)
        raise error(f"{source}: not valid YAML: {e}") from e
    if doc is None:
        return None
    if not isinstance(doc, dict) or set(doc) - {key}:
        raise error(f"{source}: expected a mapping with one key, '{key}:' (a list of {key})")
    items = doc.get(key) or []
    if not isinstance(items, list):
        raise error(f"{source}: '{key}' must be a list")
    return items

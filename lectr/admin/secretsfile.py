"""The secrets file as `lectr secrets set|list` edits it: provider keys, owner-only on disk.

The format is lectr/proxy/credentials.py's. Writing goes through YAML (safe_load, change one key,
safe_dump): the other entries and fields are kept, comments and formatting are not, and
the file says so in its first line. A change is written to a temporary file created
owner-only (0600) beside the file and renamed over it, so a reader (the proxy reloads the
file on change) sees the old file or the new one, and the key is never readable by others,
not even for a moment; an existing file's wider mode goes with it.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

import yaml

from lectr.common.errors import LectrError
from lectr.common.providers import PROVIDERS
from lectr.proxy.credentials import SECRETS_FILE, CredentialsError, parse_credentials

DEFAULT_PATH = SECRETS_FILE
HEADER = (
    "# Lectr secrets: provider keys Lectr uses when a rule switches provider (see lectr/proxy/credentials.py).\n"
    "# Written by `lectr secrets set`, which keeps every entry but not comments: edit by hand or with it, not both.\n"
)


class SecretsFileError(LectrError, ValueError):
    """The secrets file cannot be read or changed; the message says why."""


@dataclass(frozen=True, slots=True)
class Entry:
    provider: str
    org: str | None  # None: for every org
    masked_key: str  # the last 4 characters only, or "(no key)"


def set_key(path: str | Path, provider: str, api_key: str, org: str | None = None) -> None:
    """Store `api_key` for `provider` (for `org` only, if given), keeping everything else in the file."""
    if provider not in PROVIDERS:
        raise SecretsFileError(f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    api_key = api_key.strip()
    if not api_key or any(c.isspace() for c in api_key):
        raise SecretsFileError("the key must be one non-empty word (no spaces or line breaks)")
    doc = _load(path)
    scope = doc
    if org is not None:
        if not org.strip():
            raise SecretsFileError("ORG must not be empty")
        scope = _mapping(_mapping(doc, "orgs", path), org.strip(), path)
    settings = _mapping(_mapping(scope, "providers", path), provider, path)
    settings["api_key"] = api_key
    text = HEADER + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True)
    try:
        parse_credentials(text, env={}, source=str(path))
    except CredentialsError as e:
        raise SecretsFileError(f"{e}; fix the file by hand, nothing was written") from e
    try:
        write_private(path, text)
    except OSError as e:
        raise SecretsFileError(f"cannot write {path}: {e}") from e


def entries(path: str | Path) -> list[Entry]:
    """Every provider entry in the file, keys masked."""
    text = _read(path)
    try:
        credentials = parse_credentials(text, env={}, source=str(path))
    except CredentialsError as e:
        raise SecretsFileError(str(e)) from e
    found = [Entry(p, None, mask(s.api_key)) for p, s in credentials.defaults.items()]
    for org, providers in credentials.orgs.items():
        found += [Entry(p, org, mask(s.api_key)) for p, s in providers.items()]
    return found


def mask(key: str | None) -> str:
    """`...abcd`: the last 4 characters, enough to tell keys apart; a short key not even those."""
    if not key:
        return "(no key)"
    return f"...{key[-4:]}" if len(key) >= 12 else "..."


def readable_by_others(path: str | Path) -> bool:
    """Whether group or others may read or write the file."""
    try:
        return bool(os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except FileNotFoundError:
        return False


def write_private(path: str | Path, text: str) -> None:
    """Replace `path` with `text` atomically; the new file is 0600 from its creation on."""
    target = Path(os.path.realpath(path))  # a symlinked secrets file stays a symlink
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1  # closed with f
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as e:
        raise SecretsFileError(f"cannot read {path}: {e}") from e


def _load(path: str | Path) -> dict:
    """The file as it is, checked first: a file Lectr cannot use is not rewritten (its content would be lost)."""
    text = _read(path)
    try:
        parse_credentials(text, env={}, source=str(path))
        doc = yaml.safe_load(text)
    except CredentialsError as e:
        raise SecretsFileError(f"{e}; fix it by hand, nothing was written") from e
    except Exception as e:  # PyYAML raises more than YAMLError; its message quotes the line, which may hold a key
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SecretsFileError(f"{path} is not valid YAML{where}; fix it by hand, nothing was written") from e
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise SecretsFileError(f"{path}: expected top-level keys 'providers' and/or 'orgs'; nothing was written")
    return doc


def _mapping(parent: dict, name: str, path: str | Path) -> dict:
    """parent[name] as a mapping, created if absent; an error if it is something else."""
    key = next((k for k in parent if str(k) == name), name)  # an org id YAML read as a number
    child = parent.get(key)
    if child is None:
        child = parent[key] = {}
    if not isinstance(child, dict):
        raise SecretsFileError(f"{path}: {name!r} must be a mapping; fix it by hand, nothing was written")
    return child

"""Where the proxy reads the rules and the experiments: a YAML file, or a document in the store.

`lectr_rules=db` (and `lectr_experiments=db`, which follows the rules by default) names the
document of that name in the store at `lectr_db` (lectr/store/documents.py), so every proxy on
one database routes by the same rules. Either way it is a `WatchedFile`, polled as often as a
file: a document's signature is the store's `document_version`, a counter in memory (PostgreSQL's
notifications) or a stamp file's stat (DuckDB), so a poll costs no query; the document is read
only when it changed. A store that cannot be read (PostgreSQL down, a DuckDB file locked too
long) is a passing error: what is in force stays, and the next poll reads it again.
"""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

from lectr.common.rules import IN_DB
from lectr.common.watch import WatchedFile
from lectr.proxy import lastgood
from lectr.store import StorageError, is_postgres, open_store

T = TypeVar("T")

STORE_OPTIONS = {"lectr_db", "lectr_keys_db"}  # Auth's options: where the documents are (the keys' store)


def watch(
    where: str,
    db: str,
    name: str,
    load_file: Callable[[str], T],
    parse: Callable[[str, str], T],
    missing: T,
    log: logging.Logger,
    on_load: Callable[[WatchedFile[T]], None] | None = None,
    *,
    confdir: str = "",
) -> WatchedFile[T]:
    """`where`: a file's path (read with `load_file`), or IN_DB: the document `name` in the store at
    `db`, its text parsed as the file's (`parse(text, source)`). A missing file or document is `missing`.

    Returned read once already, holding what is in force; but a PostgreSQL store's document is first
    taken from the last good copy in `confdir` (lectr.proxy.lastgood) when there is one, and read
    from the database at the next poll, so a proxy starting while the server is away neither waits
    for it nor starts without its rules."""
    if where != IN_DB:
        watched = WatchedFile(where, load_file, missing, log.error, on_load)
        watched.poll()
        return watched
    store = open_store(db)
    source = f"the {name} document in {store.display}"  # never the location: a URL may hold a password
    copy = lastgood.cache_file(confdir, store.display, name) if confdir and is_postgres(db) else None
    said_missing = False  # the store is read again at each reconnection: say it once

    def load(_: str) -> T:
        nonlocal said_missing
        found = store.document(name)
        said, said_missing = said_missing, found is None
        if found is None and not said:
            log.info(
                "No %s document in %s yet: %s. Import one with: lectr %s import FILE --db <that database>",
                name,
                store.display,
                "every request passes through unrouted" if name == "rules" else "none running",
                name,
            )
        value = missing if found is None else parse(found[0], source)
        if copy is not None:
            lastgood.remember(copy, None if found is None else found[0])
        return value

    watched = WatchedFile(
        source,
        load,
        missing,
        log.warning,  # not an error: mitmproxy ends a proxy that logs one while starting, and the last good stays
        on_load,
        retry_on=(StorageError,),
        signature=lambda _: store.document_version(name),
    )
    kept = lastgood.recall(copy) if copy is not None else None
    if kept is not None:
        try:
            text = kept["value"]
            watched.value = missing if text is None else parse(text, f"{source} (the copy kept in {copy.parent})")
            log.info("%s: the copy kept in %s, until the database can be read", source, copy.parent)
            if on_load:
                on_load(watched)
            return watched  # the database at the next poll, in the background
        except Exception as e:  # a damaged copy: the database decides, as without one
            log.warning("the copy of %s kept in %s is unreadable (%s); reading the database", source, copy.parent, e)
    watched.poll()
    return watched

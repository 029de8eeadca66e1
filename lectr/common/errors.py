"""`LectrError`: the base of every error Lectr raises on purpose.

Its message is for the user and says how to fix the cause (a rule, a price file, an option,
a database path). Each subclass keeps the builtin base it had (ValueError for bad input,
RuntimeError for a failed operation), so callers catching those still do.
"""


class LectrError(Exception):
    """An error Lectr raises on purpose, with a message that says how to fix it."""

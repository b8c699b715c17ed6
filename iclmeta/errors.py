"""The one exception type for user mistakes.

The CLI prints a ``UserError`` as a single ``error: ...`` line and exits with status 2; every
other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, with the fix in the message.

    >>> raise UserError("unknown method 'foo'; choose one of: icl, retrieval")
    Traceback (most recent call last):
    ...
    iclmeta.errors.UserError: unknown method 'foo'; choose one of: icl, retrieval
    """

"""The one exception type a user can trigger: its message is a single line naming the fix."""


class TagscopeError(Exception):
    """A user-facing error; the CLI prints ``error: <message>`` and exits 2, with no traceback."""

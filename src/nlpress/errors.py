"""User-facing errors.

Every problem a user can fix (a bad path, a bad column, a bad recipe value) raises
:class:`NlpressError` with a one-line message that names the problem and the fix. The CLI prints
it as ``error: <message>`` and exits with code 2; nothing else is caught there, so a real bug
still shows its traceback.
"""


class NlpressError(Exception):
    """A problem with the user's input, with a message that says how to fix it."""

    exit_code = 2

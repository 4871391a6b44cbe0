"""The one exception type users see.

Anything raised as ``UserError`` is a problem with the user's input (a path, a flag, a file); the CLI
prints its message on one line and exits with status 2, without a traceback. The message should name
the problem and the fix.
"""


class UserError(Exception):
    """Bad input from the user: printed as one line by the CLI, exit status 2."""

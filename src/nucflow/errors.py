"""Error types raised for bad user input."""


class InputError(ValueError):
    """Bad user input: the message is one line naming the file, the record and what was expected."""

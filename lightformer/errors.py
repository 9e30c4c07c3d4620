"""One exception type for bad user input, so the CLI can answer it with one line and exit code 2."""


class LightformerError(ValueError):
    """Bad input: a value outside its allowed range, an unknown name, a foreign file.

    The message names the offending value and what is allowed; the CLI prints it without a
    traceback and exits with status 2.
    """

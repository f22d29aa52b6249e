"""What the command line says: one line per result on stdout, warnings held and said once on stderr."""

from __future__ import annotations

import json
import logging
import os
import sys


def first_line(text: str) -> str:
    """What fits on one line of a terminal: API messages may carry a multi-line string to sign."""
    return text.strip().splitlines()[0] if text.strip() else text


def print_result(args, data: dict, template: str) -> None:
    say(json.dumps(data, ensure_ascii=False) if args.json else template.format(**data))


def say(text: str) -> None:
    """One line on stdout; once the reader has gone (`| head`), the rest of the output is dropped."""
    try:
        print(text)
    except BrokenPipeError:
        _drop_stdout()


def finish_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()


def _drop_stdout() -> None:
    """Point stdout at the null device, so that nothing, not even the flush at exit, writes to a closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class HeldLogRecords(logging.Handler):
    """Without -v: our warnings, held until the command ends, then one line each on stderr.

    The error the CLI reports itself (say a flush stopped by a wrong secret) is left out of them, so
    that it is said once: records that carry an API error with the same code are not repeated.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def write_out(self, *, leaving_out: str | None) -> None:
        """Write the held records out and stop holding: our loggers go back to the root's handler."""
        ours = logging.getLogger("handler")
        ours.removeHandler(self)
        ours.propagate = True
        for record in self.records:
            if leaving_out is not None and leaving_out in _error_codes_carried(record):
                continue
            print(f"{record.levelname} {record.name}: {first_line(record.getMessage())}", file=sys.stderr)
        self.records.clear()


def api_error_code(error: str) -> str:
    """The API code an error text starts with: "SignatureDoesNotMatch (HTTP 400, ...): ..." or "Code: ..."."""
    return error.split(None, 1)[0].rstrip(":") if error.strip() else error


def _error_codes_carried(record: logging.LogRecord) -> set[str]:
    args = record.args if isinstance(record.args, tuple) else ()
    codes = {getattr(arg, "code", None) for arg in args}
    codes |= {getattr(getattr(arg, "problem", None), "code", None) for arg in args}
    return {code for code in codes if isinstance(code, str)}


def log_to_stderr(verbose: bool) -> HeldLogRecords | None:
    # Only our own loggers go to DEBUG: some SDKs log request headers (tokens) on the root logger.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ours = logging.getLogger("handler")
    if verbose:
        ours.setLevel(logging.DEBUG)
        return None
    ours.setLevel(logging.WARNING)
    held = HeldLogRecords()
    ours.addHandler(held)
    ours.propagate = False
    return held

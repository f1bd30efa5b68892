"""Reading what the user typed: JSON request files and usage errors, shared by every command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

EXIT_USAGE = 2


def usage(message: str) -> int:
    """Print a usage error the way argparse does; returns the exit code for it."""
    print(f"tarash-router: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def load_json(path: str) -> Any:
    """A JSON file ('-' for stdin); a missing file or bad JSON ends the command with a usage error."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as exc:
        raise SystemExit(usage(f"cannot read {path}: {exc.strerror}")) from None
    except json.JSONDecodeError as exc:
        raise SystemExit(usage(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}")) from None

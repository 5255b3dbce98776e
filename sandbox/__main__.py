"""The sandbox daemon: `python -m sandbox --state-dir DIR` (started by `opsflows sandbox up`).

It brings the sandbox up, writes its description to DIR/sandbox.json (the file `up`, `status` and
`down` read), and stops everything on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from sandbox.core import Sandbox

DESCRIPTION_FILE = "sandbox.json"
ERROR_FILE = "startup-error.txt"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox")
    parser.add_argument("--state-dir", type=Path, required=True)
    state_dir = parser.parse_args().state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / ERROR_FILE).unlink(missing_ok=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    sandbox = Sandbox(state_dir)
    try:
        description = sandbox.start()
    except Exception:
        (state_dir / ERROR_FILE).write_text(traceback.format_exc())
        sandbox.stop()
        return 1
    description["pid"] = os.getpid()
    partial = state_dir / (DESCRIPTION_FILE + ".tmp")
    partial.write_text(json.dumps(description, indent=2))
    partial.rename(state_dir / DESCRIPTION_FILE)
    try:
        stop.wait()
    finally:
        (state_dir / DESCRIPTION_FILE).unlink(missing_ok=True)
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

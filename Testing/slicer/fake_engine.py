"""A stand-in for ``python -m UniversalSegLib segment``: prints progress lines, then sleeps.

Usage: ``python fake_engine.py WINDOWS SLEEP_SECONDS [EXIT_CODE]``. Writes its pid to stderr first.
"""

from __future__ import annotations

import sys
import time

from UniversalSegLib.progress import ProgressEvent

windows, sleep_seconds = int(sys.argv[1]), float(sys.argv[2])
exit_code = int(sys.argv[3]) if len(sys.argv) > 3 else 0
print("engine starting", flush=True)
print(ProgressEvent("load", 1, 1, 0.1).to_json_line(), flush=True)
for done in range(1, windows + 1):
    print(
        ProgressEvent("inference", done, windows, 0.2 * done, 0.2 * (windows - done)).to_json_line(),
        flush=True,
    )
    time.sleep(0.01)
print("all windows done", flush=True)
time.sleep(sleep_seconds)
print(ProgressEvent("done", 1, 1, 1.0, 0.0).to_json_line(), flush=True)
sys.exit(exit_code)

"""``python -m matseg_nb.dashboard.worker KIND WORKSPACE RUN [JSON_KWARGS]``: run one dashboard analysis
(:data:`matseg_nb.dashboard.actions.ANALYSES`) in this process and record its state and output folder in the
run folder (``matseg_nb.dashboard.background``). Started detached by ``DashboardState.start_analysis``."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from matseg_nb.atomic import atomic_write_json
from matseg_nb.dashboard.actions import ANALYSES, DashboardState, error_text
from matseg_nb.dashboard.background import state_file


def main(argv: list[str]) -> int:
    kind, workspace, run_arg = argv[:3]
    kwargs = json.loads(argv[3]) if len(argv) > 3 else {}
    if kind not in ANALYSES:
        print(f"analysis: expected one of {tuple(ANALYSES)}, found {kind!r}", file=sys.stderr)
        return 2
    st = DashboardState(workspace)
    run = st.resolve(run_arg)
    started = time.time()
    atomic_write_json(state_file(run, kind), {"state": "running", "pid": os.getpid(), "started": started})
    try:
        # every path stays in the workspace but the image to explain, which explain_input checks is one of
        # the dataset's test or validation images
        paths = {k: Path(v) if k == "image_path" else st.resolve(v) for k, v in kwargs.items()}
        out = ANALYSES[kind](st, run, **paths)
    except BaseException as err:  # noqa: BLE001 - recorded for the page
        atomic_write_json(state_file(run, kind), {"state": "failed", "pid": os.getpid(), "started": started,
                                                  "error": error_text(err), "elapsed_s": time.time() - started})
        print(error_text(err), file=sys.stderr)
        return 1
    atomic_write_json(state_file(run, kind), {"state": "done", "pid": os.getpid(), "started": started,
                                              "out": str(out), "elapsed_s": time.time() - started})
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child process
    sys.exit(main(sys.argv[1:]))

"""In a terminal IPython: a text progress bar, and Ctrl-C cancels the waiting line's tasks.

IPython runs in a pseudo-terminal (pexpect, which IPython itself depends on), so Ctrl-C
is a real SIGINT to the terminal's foreground processes, as when a person presses it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pexpect
import psutil

PROMPT = r"In \[(\d+)\]: "


def test_terminal_ipython_gets_a_text_bar_and_ctrl_c_cancels(tmp_path: Path) -> None:
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"), TERM="dumb")
    env.pop("JUPYTER_RAY_ADDRESS", None)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "IPython", "--simple-prompt", "--no-banner", "--colors=NoColor"],
        env=env,
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
    )
    seen: set[psutil.Process] = set()
    try:
        child.expect(PROMPT)
        child.sendline(
            "import jupyter_ray as ray, time; ray.init(num_cpus=2); "
            "nap = ray.remote(lambda s: (time.sleep(s), s)[1])"
        )
        child.expect(PROMPT)
        seen.update(psutil.Process(child.pid).children(recursive=True))
        child.sendline("ray.get([nap.remote(0.7) for _ in range(4)])")
        child.expect(PROMPT)
        shown = child.before
        assert "\rget() [" in shown  # redrawn in place while it waits
        assert "complete in " in shown and "4/4 done" in shown
        assert "Out[2]: [0.7, 0.7, 0.7, 0.7]" in shown
        child.sendline("ray.get([nap.remote(60) for _ in range(2)])")
        child.expect(r"get\(\) \[")  # the bar is up: the line waits in get
        started = time.monotonic()
        child.sendintr()
        child.expect(PROMPT)
        took = time.monotonic() - started
        assert took < 5
        assert (
            "KeyboardInterrupt: interrupted get(); cancelled 2 tasks of this cell." in child.before
        )
        assert "cancelled in " in child.before  # the bar ended so
        child.sendline("print('after', ray.get(nap.remote(0)))")
        child.expect(PROMPT)
        assert "after 0" in child.before
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    _, alive = psutil.wait_procs([p for p in seen if p.is_running()], timeout=10)
    for proc in alive:
        proc.kill()
    assert not alive, f"the runtime outlived IPython: {alive}"

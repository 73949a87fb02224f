"""Named crash points for fault-injection tests: die exactly here, as a power cut would.

Durability claims are only as good as the crashes they were tested against.
Every beat boundary and every side effect has a name; when the environment
variable ``SELFHEAL_FAILPOINT`` names one, the process kills itself with
SIGKILL on reaching it (no cleanup, no flush, no atexit). Unset, a check is
one dictionary lookup. Names:

- ``beat:<phase>:<beat>:started``       the attempt is recorded, the handler has not run
- ``beat:<phase>:<beat>:returned``      the handler returned, its checkpoint is not written
- ``beat:<phase>:<beat>:checkpointed``  the checkpoint is written, the next step has not begun
- ``deploy:<action>:<target>:intent``   the intent row is written, the target is untouched
- ``deploy:<action>:<target>:effect``   the target was changed, the change is not confirmed
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "SELFHEAL_FAILPOINT"


def hit(name: str) -> None:
    """Die now if the failpoint ``name`` is armed."""
    if os.environ.get(ENV_VAR) == name:
        os.kill(os.getpid(), signal.SIGKILL)

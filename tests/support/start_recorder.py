"""Notes that an instance of the service starts, then becomes that instance.

Usage (as the local fleet's instance command):
``python start_recorder.py <starts.jsonl> <instance> <service argv...>``

It appends ``{"instance", "version", "pid", "at"}`` to the starts file with
one ``O_APPEND`` write and then ``exec``s the service in the same process, so
the fleet's pid, process group and start time are those of the service itself
and the version is the one the service is given (``SERVICE_VERSION``). Counting
these lines counts the processes the targets really ran.
"""

import json
import os
import sys
import time


def main() -> None:
    starts, instance, *service = sys.argv[1:]
    record = {
        "instance": instance,
        "version": os.environ.get("SERVICE_VERSION"),
        "pid": os.getpid(),
        "at": time.time(),
    }
    fd = os.open(starts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)
    os.execv(service[0], service)


if __name__ == "__main__":
    main()

"""A mail sink for benchmarks: accepts every message, keeps none, counts them.

Run as its own process (`python -m bench.smtp_counter PORT COUNT_FILE`), so the
benchmark's workers talk to it over real SMTP. It writes how many messages it
has accepted to COUNT_FILE once a second and when stopped.
"""

import signal
import sys
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


class Counter:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        return "250 OK"


def main(port, count_file):
    counter = Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    path = Path(count_file)
    try:
        while not stop.wait(1):
            path.write_text(str(counter.count))
    finally:
        path.write_text(str(counter.count))
        controller.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])

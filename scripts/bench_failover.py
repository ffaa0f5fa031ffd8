"""How long the API stays unanswered through the proxy when one API replica is killed (`make stack-ha` up).

Polls /api/health through the proxy every 20 ms, SIGKILLs one `prefect-api` container, keeps polling, and prints
the failed polls and the longest time without an answer after the kill. The replica comes back by compose's
restart policy; the proxy takes it back into rotation once it answers its health check again.

    make stack-ha && uv run python scripts/bench_failover.py
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import threading
import time
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:4200/api/health")
    parser.add_argument("--container", default="flowops-prefect-api-1", help="the replica to kill")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to keep polling after the kill")
    args = parser.parse_args()

    answers: list[tuple[float, bool]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            asked = time.monotonic()
            try:
                with urllib.request.urlopen(args.url, timeout=2) as response:  # noqa: S310 - the local proxy
                    answered = response.read().strip() == b"true"
            except OSError:
                answered = False
            answers.append((asked, answered))
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    time.sleep(2)
    engine = shutil.which("docker") or "podman"  # the container stack's socket answers the docker CLI too
    killed = time.monotonic()
    subprocess.run([engine, "kill", args.container], check=True, capture_output=True)
    time.sleep(args.seconds)
    stop.set()
    poller.join()

    after = [(asked, answered) for asked, answered in answers if asked >= killed]
    failed = [asked for asked, answered in after if not answered]
    longest, last_answer = 0.0, killed
    for asked, answered in after:
        if answered:
            longest = max(longest, asked - last_answer)
            last_answer = asked
    if after and not after[-1][1]:  # still unanswered when polling stopped
        longest = max(longest, after[-1][0] - last_answer)
    print(f"polls after the kill: {len(after)}, unanswered: {len(failed)}")
    print(f"longest time without an answer after the kill: {longest * 1000:.0f} ms (polls every 20 ms)")
    if failed:
        print(f"unanswered from {(failed[0] - killed) * 1000:.0f} ms to {(failed[-1] - killed) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

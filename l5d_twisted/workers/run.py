"""``l5d-twisted run`` with ``workers`` above 1: the supervisor's process (see :mod:`.supervisor`)."""

from __future__ import annotations

import signal
import sys
from typing import Any

from twisted.logger import Logger

log = Logger()


def run_supervisor(args: Any, config: Any, count: int) -> int:
    from twisted.internet import reactor as global_reactor
    from twisted.internet.error import ReactorNotRunning

    from l5d_twisted.cli.run import tune_gc
    from l5d_twisted.logs import start_logging
    from l5d_twisted.workers.supervisor import Supervisor

    unshareable = [
        f"routers[{i}].servers[{j}]"
        for i, router in enumerate(config.routers)
        for j, server in enumerate(router.servers)
        if server.port == 0
    ]
    if unshareable:
        print(
            f"{args.config}: workers: {count} workers cannot share a router port 0 (each would "
            f"get its own free port): give {', '.join(unshareable)} a port, or run one worker",
            file=sys.stderr,
        )
        return 2
    try:
        with open(args.config, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        print(f"{args.config}: cannot read: {e}", file=sys.stderr)
        return 2
    reactor: Any = global_reactor
    start_logging(args.log_format, args.log_level)
    supervisor = Supervisor(
        config, text, args.config, count, reactor, args.log_format, args.log_level
    )

    def stop_reactor() -> None:
        try:
            reactor.stop()
        except ReactorNotRunning:
            pass

    def failed_to_start(failure: Any) -> None:
        print(f"l5d-twisted: cannot start: {failure.getErrorMessage()}", file=sys.stderr)
        supervisor.exit_code = 1  # the supervisor is stopping the workers that did start

    def shut_down_or_hurry() -> None:
        if supervisor.stopping:
            supervisor.hurry()
        else:
            supervisor.shutdown()

    def on_signal(signum: int, frame: Any) -> None:
        reactor.callFromThread(shut_down_or_hurry)

    def begin() -> None:
        # Twisted installed its own handlers (SIGCHLD, which reaps the workers, and
        # SIGTERM/SIGINT, which would stop the reactor at once): ours drain instead.
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            supervisor.start().addCallbacks(lambda _: tune_gc(), failed_to_start)
        except OSError as e:  # the admin port cannot be bound: nothing started yet
            print(f"l5d-twisted: cannot start: {e}", file=sys.stderr)
            supervisor.exit_code = 1
            stop_reactor()

    supervisor.on_shutdown(stop_reactor)
    reactor.callWhenRunning(begin)
    reactor.run()
    return supervisor.exit_code

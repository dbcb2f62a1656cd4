"""``python3 -m muster_signal``: the client from a shell, for images that
have Python but not the muster binary.

Why it exists: a compose healthcheck of a Python-only agent image needs a
command like ``muster check --agent NAME``; this is that command (same exit
codes: 0 ready, 1 not ready with the reason on stderr, 2 bad usage or Redis
unreachable), plus ``ready`` / ``not-ready`` for entrypoint scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from . import Client, SignalError


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m muster_signal",
        description="muster ready signals (settings from MUSTER_REDIS_URL, MUSTER_NAMESPACE)",
    )
    parser.add_argument("action", choices=["check", "ready", "not-ready"])
    parser.add_argument("--agent", help="agent name (default: MUSTER_AGENT)")
    parser.add_argument("--reason", default="not ready", help="for not-ready")
    parser.add_argument("--meta", action="append", default=[], metavar="K=V", help="for ready")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per Redis call")
    args = parser.parse_args(argv)
    try:
        client = Client(args.agent, timeout=args.timeout)
        if args.action == "ready":
            meta = dict(kv.split("=", 1) for kv in args.meta if "=" in kv)
            client.ready(meta)
        elif args.action == "not-ready":
            client.not_ready(args.reason)
        else:
            r = client.read()
            if r.is_ready:
                print(f"agent {client.agent}: ready {json.dumps(r.meta)}")
                return 0
            print(f"agent {client.agent} not ready: {r.reason}", file=sys.stderr)
            return 1
    except (SignalError, ValueError) as e:
        print(f"python3 -m muster_signal: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

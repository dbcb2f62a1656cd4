#!/usr/bin/env python3
"""An example Python agent for muster's demo stack (compose/demo.yaml).

Why it exists: it is what a real agent of these stacks looks like with the
client (a slow start reported as progress, a health port, the seed-style
``mark_agent_ready`` / ``mark_agent_not_ready`` calls, a graceful SIGTERM),
and muster probes it like the Rust demo agents. Settings come from
MUSTER_REDIS_URL, MUSTER_NAMESPACE and MUSTER_AGENT, as muster's own.

    python3 agent.py [--startup SECONDS] [--port PORT] [--health-port PORT]
"""

from __future__ import annotations

import argparse
import http.server
import logging
import os
import signal
import threading
import time

from muster_signal import mark_agent_not_ready, mark_agent_ready, mark_agent_starting


class Health(http.server.BaseHTTPRequestHandler):
    """``GET /health`` on the health port: 200 once the agent is ready."""

    ready = threading.Event()

    def do_GET(self) -> None:
        ok = self.path == "/health" and self.ready.is_set()
        body = b"ok\n" if ok else b"starting\n"
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class RetrieverAgent:
    def __init__(self, startup: float, port: int, health_port: int) -> None:
        self.agent_name = os.environ.get("MUSTER_AGENT", "retriever-agent")
        self.startup = startup
        self.port = port
        self.health_port = health_port
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        server = http.server.ThreadingHTTPServer(("0.0.0.0", self.health_port), Health)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        steps = 5
        for i in range(steps):  # "loading the index": progress, and room to finish
            mark_agent_starting(self.agent_name, f"loading index {i * 100 // steps}%", extend=60)
            if self.stop.wait(self.startup / steps):
                break
        else:
            Health.ready.set()
            mark_agent_ready(
                self.agent_name,
                {
                    "port": self.port,
                    "health_port": self.health_port,
                    "startup_time": round(time.monotonic() - started, 3),
                },
            )
            logging.info("%s ready", self.agent_name)
            self.stop.wait()
        mark_agent_not_ready(self.agent_name, "graceful shutdown")
        server.shutdown()
        logging.info("%s stopped", self.agent_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--startup", type=float, default=4.0, help="seconds to 'load'")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--health-port", type=int, default=8001)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    RetrieverAgent(args.startup, args.port, args.health_port).run()


if __name__ == "__main__":
    main()

"""Command line: ``edge-agent run | check-config | read``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from edge_agent import __version__
from edge_agent.config import ConfigError, load

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

log = logging.getLogger("edge_agent")


def _cmd_check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.file)
    except ConfigError as exc:
        print(f"edge-agent: invalid config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"OK {cfg.summary()}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from edge_agent.agent import Agent, StartupError
    from edge_agent.systemd_notify import Notifier, setup_logging

    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"edge-agent: invalid config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(cfg.log.level)
    if args.config is None:
        log.info("no --config given: running on the embedded defaults (demo source, data in %s, MQTT %s:%d)",
                 cfg.data_dir, cfg.mqtt.host, cfg.mqtt.port)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        agent = Agent(cfg)
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        print(f"edge-agent: cannot start: {exc}", file=sys.stderr)
        return EXIT_USAGE
    agent.run_forever(Notifier(), stop)
    return EXIT_OK


def _cmd_read(args: argparse.Namespace) -> int:
    from edge_agent.alpr.read_command import run_read

    return run_read(list(args.paths), bool(args.json))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-agent", description="Plate-reading camera node agent.")
    p.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (embedded demo defaults without --config)")
    run.add_argument("--config", type=Path, default=None, help="TOML config file")
    run.set_defaults(func=_cmd_run)

    chk = sub.add_parser("check-config", help="validate a config file and print a one-line summary")
    chk.add_argument("file", type=Path)
    chk.set_defaults(func=_cmd_check_config)

    rd = sub.add_parser("read", help="read plates in images or folders of images")
    rd.add_argument("--json", action="store_true", help="one JSON line per image")
    rd.add_argument("paths", type=Path, nargs="+", metavar="PATH")
    rd.set_defaults(func=_cmd_read)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

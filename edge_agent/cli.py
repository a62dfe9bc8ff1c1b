"""Command line: ``edge-agent run | check-config | read | provision | doctor``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from edge_agent import __version__
from edge_agent.config import DEFAULT_CONFIG, ConfigError, load, resolve_config

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

log = logging.getLogger("edge_agent")


def _cmd_check_config(args: argparse.Namespace) -> int:
    from edge_agent.field import preflight

    try:
        cfg = load(args.file)
    except ConfigError as exc:
        print(f"edge-agent: invalid config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    pre = preflight.check(cfg, create_data_dir=False, load_models=True)
    for w in pre.warnings:
        print(f"edge-agent: warning: {w}", file=sys.stderr)
    if pre.problems:
        for p in pre.problems:
            print(f"edge-agent: {args.file}: {p}", file=sys.stderr)
        print(f"edge-agent: 'run' would refuse this config ({len(pre.problems)} problem(s))", file=sys.stderr)
        return EXIT_USAGE
    print(f"OK {cfg.summary()}")
    return EXIT_OK



def _cmd_run(args: argparse.Namespace) -> int:
    from edge_agent.agent import Agent, StartupError
    from edge_agent.field.systemd_notify import Notifier, setup_logging

    args.config = resolve_config(args.config)
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"edge-agent: invalid config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(cfg.log.level)
    from edge_agent.commands.remote_config import prepare

    # The remote overlay (signed cmd/config) goes over the file; a bad one is rolled back, never fatal.
    base = cfg
    cfg, remote = prepare(base)
    if cfg.log.level != base.log.level:
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
        agent = Agent(cfg, remote=remote)
    except StartupError as exc:
        # Once, on stderr (journald keeps a service's stderr): not also through the logger.
        print(f"edge-agent: cannot start: {exc}", file=sys.stderr)
        return EXIT_USAGE
    agent.run_forever(Notifier(), stop)
    if agent.restart_requested and not stop.is_set():
        import os

        argv = [sys.executable, "-m", "edge_agent", "run"] + (["--config", str(args.config)] if args.config else [])
        log.info("restarting in place to apply the configuration change")
        from edge_agent.link import health

        os.environ["EDGE_AGENT_PROCESS_STARTED"] = repr(health.PROCESS_STARTED)
        os.environ["EDGE_AGENT_RESTARTS_IN_PLACE"] = str(health.RESTARTS_IN_PLACE + 1)
        logging.shutdown()
        # Same PID: systemd (Type=notify) sees a reload, not an exit; the outbox was closed by stop().
        os.execv(sys.executable, argv)
    return EXIT_OK


def _cmd_read(args: argparse.Namespace) -> int:
    from edge_agent.pipeline.alpr.read_command import EXIT_USAGE, run_read

    cfg = None
    if args.config is not None:
        try:
            cfg = load(args.config)
        except ConfigError as exc:
            print(f"edge-agent read: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return run_read(list(args.paths), bool(args.json), cfg=cfg)


def _cmd_provision(args: argparse.Namespace) -> int:
    import os
    import pwd

    from edge_agent.field.provision import ProvisionError, provision, report

    owner = args.owner
    if owner is None and os.geteuid() == 0:
        # As root (the normal case on a pole) hand the keys to the service user, who must read them.
        try:
            pwd.getpwnam("edge-agent")
            owner = "edge-agent"
        except KeyError:
            owner = None
    try:
        ident = provision(args.node_id, args.dir, force=args.force, owner=owner or None)
    except ProvisionError as exc:
        print(f"edge-agent: provision: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(report(ident))
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from edge_agent.field.doctor import run_doctor

    return run_doctor(args.config, skip=set(args.skip or ()))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-agent", description="Plate-reading camera node agent.")
    p.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (embedded demo defaults without --config)",
                         description="Run the agent: capture, motion, plate reading, events to the outbox and "
                                     "MQTT, health, commands; until SIGTERM/SIGINT. Without --config: "
                                     f"{DEFAULT_CONFIG} when it exists, else the embedded defaults (the demo "
                                     "scene, data in ./edge-agent-data, MQTT localhost:1883). Exit 2 on a config "
                                     "or start-up problem.")
    run.add_argument("--config", type=Path, default=None,
                     help=f"TOML config file (default: {DEFAULT_CONFIG} when it exists, else the embedded defaults)")
    run.set_defaults(func=_cmd_run)

    chk = sub.add_parser("check-config", help="validate a config file and print a one-line summary",
                         description="Make every check 'run' makes before starting, short of opening the camera "
                                     "and the broker: keys and values, files, key-file permissions, the node "
                                     "identity, the data folder, the camera path, the models. Exit 0 and a "
                                     "one-line summary, or exit 2 naming each problem.")
    chk.add_argument("file", type=Path, help="the TOML config file (config/edge-agent.example.toml documents it)")
    chk.set_defaults(func=_cmd_check_config)

    rd = sub.add_parser("read", help="read plates in images or folders of images",
                        description="Read the plates in image files, or in every image of the folders given "
                                    "(not recursive). One line per image on stdout, a summary on stderr. Exit 0 "
                                    "all read, 1 some images unreadable, 2 nothing could be read.")
    rd.add_argument("--json", action="store_true", help="one JSON line per image")
    rd.add_argument("--config", type=Path, metavar="FILE",
                    help="read with this node's formats, models and low-confidence limit (as `run` would)")
    rd.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="image files or folders")
    rd.set_defaults(func=_cmd_read)

    from edge_agent.field.provision import DEFAULT_DIR

    pv = sub.add_parser("provision", help="create this node's signing key, MQTT TLS key and certificate request")
    pv.add_argument("--node-id", required=True, help="the node id (MQTT topic level and certificate CN)")
    pv.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"where to write the keys (default {DEFAULT_DIR})")
    pv.add_argument("--owner", default=None,
                    help="user to own the files (default: edge-agent when run as root and that user exists)")
    pv.add_argument("--force", action="store_true", help="replace existing keys (changes the node's identity)")
    pv.set_defaults(func=_cmd_provision)

    dr = sub.add_parser("doctor", help="check that this pole is ready: one OK/WARN/FAIL line per check")
    dr.add_argument("--config", type=Path, default=None,
                    help="TOML config file (default /etc/edge-agent/edge-agent.toml when it exists)")
    dr.add_argument("--skip", action="append", metavar="CHECK", help="skip a check by name (repeatable)")
    dr.set_defaults(func=_cmd_doctor)

    from edge_agent.ops import add_commands as add_ops_commands

    add_ops_commands(sub)
    return p


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    out: dict[str, argparse.ArgumentParser] = {}
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sp in action.choices.items():
                out[name] = sp
                for sub_name, deeper in _subparsers(sp).items():
                    out[f"{name} {sub_name}"] = deeper
    return out


def _parse(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Like parse_args, but an unknown option is reported by the subcommand it was given to, with the
    nearest option it has ("run --confg": did you mean --config?), not by the top-level usage."""
    import difflib

    args, extra = p.parse_known_args(argv)
    if not extra:
        return args
    words = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("-")]
    subs = _subparsers(p)
    target = p
    for n in (2, 1):
        name = " ".join(words[:n])
        if name in subs:
            target = subs[name]
            break
    options = [o for a in target._actions for o in a.option_strings]
    hints = [f"did you mean {m[0]}?" for x in extra if (m := difflib.get_close_matches(x.split("=")[0], options, 1))]
    target.error(f"unrecognized arguments: {' '.join(extra)}" + (f" ({'; '.join(hints)})" if hints else ""))
    raise AssertionError("unreachable")  # error() exits


def main(argv: list[str] | None = None) -> int:
    args = _parse(build_parser(), argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

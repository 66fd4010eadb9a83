"""The ``homefarm`` command: serve, run, demo, doctor, login, logout, config, submit."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import logging.handlers
import os
import signal
import sys
import time
from pathlib import Path

from worker_app import __version__
from worker_app import config as config_mod
from worker_app import constants as C
from worker_app.server import cli as server_cli

log = logging.getLogger("homefarm")

# The worker's own packages (the extra `worker`): a server-only install lacks them.
WORKER_PACKAGES = frozenset({"keyring", "pynvml", "zstandard", "truststore", "jeepney"})


def _setup_logging(verbose: bool, log_file: Path | None = None, quiet: bool = False) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=3,
                                                             encoding="utf-8"))
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, handlers=handlers,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # urllib3 logs every request line at DEBUG; none carries the token, but keep the log readable.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def _load_config(paths: config_mod.Paths) -> config_mod.Config:
    try:
        return config_mod.load(paths)
    except config_mod.ConfigError as error:
        raise SystemExit(f"homefarm: bad config in {paths.config_file}: {error}") from None


def cmd_run(args, paths: config_mod.Paths) -> int:
    from worker_app.render.discovery import BlenderNotFound, find_all
    from worker_app import runtime as runtime_mod
    from worker_app.core.activity import activity_log
    from worker_app.system.credentials import CredentialError, find_token

    cfg = _load_config(paths)
    try:
        found = find_token(cfg.server_url, args.token_file)
    except CredentialError as error:
        raise SystemExit(f"homefarm: {error}") from None
    if found is None:
        raise SystemExit(f"homefarm: no worker token for {cfg.server_url}; run "
                         f"`homefarm login --server {cfg.server_url}` first (on a headless box: --token-file or "
                         "the systemd unit's credential, README \"A headless render box\")")
    token = found.token
    log.info("the worker token comes from %s", found.source)
    from worker_app.render.installs import remove_unused
    remove_unused(paths.data_dir, cfg.keep_unused_days)
    try:
        blenders = find_all(cfg.blender_path, paths.data_dir)
    except BlenderNotFound as error:
        raise SystemExit(f"homefarm: {error}") from None
    for blender in blenders:
        log.info("Blender %s at %s", blender.version, blender.path)

    on_snapshot, on_job_end = activity_log(log)
    runtime = runtime_mod.build(cfg, paths, token, blenders, max_jobs=args.max_jobs, on_snapshot=on_snapshot,
                                on_job_end=on_job_end)
    signal.signal(signal.SIGTERM, lambda *_: runtime.worker.stop())
    thread = runtime.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        log.info("stopping: a running render is stopped and its job released")
        runtime.worker.stop()
        thread.join(C.BLENDER_STOP_GRACE + C.BLENDER_KILL_WAIT + C.READ_TIMEOUT)
    runtime.stop()
    return 0


def cmd_demo(args, paths: config_mod.Paths) -> int:
    from worker_app.render.discovery import BlenderNotFound, find_blender
    from worker_app.demo import run_demo

    cfg = _load_config(paths)
    try:
        blender = find_blender(args.blender or cfg.blender_path)
    except BlenderNotFound as error:
        raise SystemExit(f"homefarm: {error}") from None
    try:
        run_demo(blender, paths.data_dir / "demo", device=args.device or cfg.device)
    except RuntimeError as error:
        raise SystemExit(f"homefarm demo failed: {error}") from None
    return 0


def cmd_doctor(args, paths: config_mod.Paths) -> int:
    from worker_app.doctor import report, run_checks, to_json

    checks = run_checks(paths, token_file=args.token_file)
    if args.json:
        result = to_json(checks)
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0 if result["ok"] else 1
    return report(checks)


def cmd_login(args, paths: config_mod.Paths) -> int:
    from worker_app.client import ClientError, Unauthorized, WorkerClient
    from worker_app.system.credentials import CredentialError, TokenStore, token_kind_problem

    cfg = _load_config(paths)
    url = (args.server or cfg.server_url).rstrip("/")
    try:
        config_mod.check_server_url(url, cfg.allow_insecure_http)
    except config_mod.ConfigError as error:
        raise SystemExit(f"homefarm: {error}") from None
    # Read from stdin or a hidden prompt, never from the command line, where other users can see it.
    if sys.stdin is None:  # a windowed program (homefarm.exe) has no standard input at all
        raise SystemExit("homefarm: this program has no console to read the token from; run "
                         "`homefarm-cli login --server URL` in a terminal")
    if args.token_stdin:
        token = sys.stdin.readline().strip()
    elif not sys.stdin.isatty():
        raise SystemExit("homefarm: there is no terminal to type the token in; pipe it instead: "
                         "`homefarm login --server URL --token-stdin < token.txt`")
    else:
        try:
            token = getpass.getpass("Worker token: ").strip()
        except (EOFError, KeyboardInterrupt):
            raise SystemExit("\nhomefarm: no token given; nothing changed") from None
    if not token:
        raise SystemExit("homefarm: no token given; nothing changed")
    if token_kind_problem(token):
        raise SystemExit(f"homefarm: {token_kind_problem(token)}")
    client = WorkerClient(url, token, cfg.allow_insecure_http)
    try:
        client.ping()
    except Unauthorized:
        raise SystemExit(f"homefarm: {url} refused this token; ask its owner for a worker token") from None
    except ClientError as error:
        raise SystemExit(f"homefarm: could not check the token with {url}: {error}") from None
    finally:
        client.close()
    try:
        TokenStore().set(url, token)
    except CredentialError as error:
        raise SystemExit(f"homefarm: {error}") from None
    config_mod.set_value(paths, "server.url", f'"{url}"')
    print(f"signed in to {url}; the token is in the OS keyring")
    return 0


def cmd_logout(args, paths: config_mod.Paths) -> int:
    from worker_app.system.credentials import CredentialError, TokenStore

    cfg = _load_config(paths)
    try:
        removed = TokenStore().delete(cfg.server_url)
    except CredentialError as error:
        raise SystemExit(f"homefarm: {error}") from None
    print(f"signed out of {cfg.server_url}" if removed else f"no token was stored for {cfg.server_url}")
    return 0


def cmd_pause(args, paths: config_mod.Paths) -> int:
    from worker_app.guard import parse_duration
    from worker_app.runtime import manual_pause

    try:
        when = parse_duration(args.duration)
    except ValueError as error:
        raise SystemExit(f"homefarm: {error}") from None
    pause = manual_pause(paths)
    pause.pause(**when)
    import datetime as dt
    print(pause.check(dt.datetime.now()).reason.capitalize())
    return 0


def cmd_resume(args, paths: config_mod.Paths) -> int:
    from worker_app.runtime import manual_pause

    manual_pause(paths).resume()
    print("resumed (other causes, such as a running game, still pause the worker)")
    return 0


def cmd_activity(args, paths: config_mod.Paths) -> int:
    """The activity window (the tray's menu opens it as this command, in a process of its own)."""
    try:
        from worker_app.tray.activity import main as activity_main
    except ImportError as error:
        raise SystemExit(f"homefarm: the activity window needs Qt's charts ({error.name} is not installed): "
                         "pip install 'homefarm[tray]'; `homefarm stats` prints the figures") from None
    return activity_main(paths)


def cmd_stats(args, paths: config_mod.Paths) -> int:
    import datetime as dt

    from worker_app.runtime import ledger

    cfg = _load_config(paths)
    book = ledger(paths)
    if args.json:
        print(json.dumps({
            "currency": cfg.currency, "price_per_kwh": cfg.price_per_kwh,
            "totals": {label: {"jobs": t.jobs, "render_s": round(t.render_s, 3), "gpu_energy_wh": round(t.energy_wh, 3),
                               "cost": round(t.cost(cfg.price_per_kwh), 4)} for label, t in book.summary().items()},
            "recent": [{"job_id": job_id, "finished": finished, "outcome": outcome, "wall_s": wall_s,
                        "render_s": render_s, "gpu_energy_wh": energy_wh}
                       for job_id, finished, outcome, wall_s, render_s, energy_wh in book.recent(args.last)],
        }, indent=2))
        return 0
    print(f"{'':<12}{'jobs':>6}{'render h':>10}{'GPU kWh':>10}{'cost':>12}")
    for label, totals in book.summary().items():
        cost = f"{totals.cost(cfg.price_per_kwh):.2f} {cfg.currency}"
        print(f"{label:<12}{totals.jobs:>6}{totals.render_s / 3600:>10.2f}{totals.energy_wh / 1000:>10.3f}"
              f"{cost:>12}")
    recent = book.recent(args.last)
    if recent:
        print(f"\nlast {len(recent)} jobs (electricity at {cfg.price_per_kwh:g} {cfg.currency}/kWh):")
        for job_id, finished, outcome, wall_s, render_s, energy_wh in recent:
            when = dt.datetime.fromtimestamp(finished).strftime("%Y-%m-%d %H:%M")
            energy = "no power reading for this GPU" if energy_wh is None else \
                f"{energy_wh:.2f} Wh = {energy_wh / 1000 * cfg.price_per_kwh:.4f} {cfg.currency}"
            print(f"  {when}  job {job_id:<8} {outcome:<9} wall {wall_s:7.1f} s  render {render_s:7.1f} s  "
                  f"{energy}")
    return 0


def cmd_blender(args, paths: config_mod.Paths) -> int:
    """`blender list` shows the Blenders found and installed; `add 4.5` installs one; `remove 4.5` removes it."""
    from worker_app.render import installs
    from worker_app.render.discovery import find_installs

    cfg = _load_config(paths)
    try:
        if args.action == "add":
            bar = _ProgressBar()
            install = installs.install(paths.data_dir, installs.series_of(args.version or ""), cfg.blender_sources,
                                       cfg.blender_mirror, cfg.allow_insecure_http, say=bar.say, progress=bar)
            bar.say(f"Blender {install.version} is ready; jobs whose scenes need it render with it")
        elif args.action == "remove":
            print(f"removed Blender {installs.remove(paths.data_dir, args.version or '')}")
        else:
            for found in find_installs(cfg.blender_path):
                print(f"Blender {found.version:<10} executable  {found.path}")
            for own in installs.installed(paths.data_dir):
                print(f"Blender {own.version:<10} {installs.kind_of(own):<11} "
                      f"{installs.install_size(own) / 2**30:.1f} GB, installed by homefarm "
                      f"(homefarm blender remove {installs.series_of(own.version)})")
    except installs.InstallError as error:
        raise SystemExit(f"homefarm: {error}") from None
    return 0


class _ProgressBar:
    """A download's progress on the terminal: one line redrawn; a line per tenth where output is not a terminal."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        if not total:
            return
        percent = min(100, done * 100 // total)
        if self.live:
            filled = percent * 30 // 100
            self.stream.write(f"\r  [{'#' * filled}{' ' * (30 - filled)}] {percent:3d}%  "
                              f"{done / 1e6:.0f} of {total / 1e6:.0f} MB")
            self.stream.flush()
        elif percent // 10 != self.shown // 10:
            print(f"  {percent}% ({done / 1e6:.0f} of {total / 1e6:.0f} MB)", file=self.stream, flush=True)
        self.shown = percent

    def say(self, text: str) -> None:
        if self.live and self.shown >= 0:
            self.stream.write("\n")
            self.shown = -1
        print(text, file=self.stream, flush=True)


def cmd_autostart(args, paths: config_mod.Paths) -> int:
    from worker_app.system import autostart

    entry = autostart.for_this_os()
    if args.action == "on":
        entry.enable()
    elif args.action == "off":
        entry.disable()
    print(entry.status())
    return 0


def cmd_config(args, paths: config_mod.Paths) -> int:
    """`config` shows every setting as TOML, `config show KEY` one, `config set KEY VALUE` changes one."""
    names = {f"{section}.{key}": attr for (section, key), (attr, _) in config_mod.KEYS.items()}
    if args.key is not None and args.key not in names:
        raise SystemExit(f"homefarm: {args.key}: unknown key (allowed: {', '.join(names)})")
    if args.action == "set":
        try:
            config_mod.set_value(paths, args.key, args.value)
        except config_mod.ConfigError as error:
            raise SystemExit(f"homefarm: {error}") from None
    cfg = _load_config(paths)
    if args.json:
        shown = [args.key] if args.key is not None else list(names)
        print(json.dumps({name: config_mod.value_of(cfg, name) for name in shown}, indent=2, ensure_ascii=False))
        return 0
    if args.key is not None:
        print(f"{args.key} = {_toml(getattr(cfg, names[args.key]))}"
              + (f"  (saved in {paths.config_file})" if args.action == "set" else ""))
        return 0
    print(f"# {paths.config_file}")
    for name, attr in names.items():
        print(f"{name} = {_toml(getattr(cfg, attr))}")
    return 0


def _toml(value) -> str:
    """A setting's value as it is written in the config file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _command(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
    """A command whose --help opens with what it does, as a sentence (its one-line help, unless it has more)."""
    if "help" in kwargs and "description" not in kwargs:
        kwargs["description"] = kwargs["help"][0].upper() + kwargs["help"][1:] + "."
    return subparsers.add_parser(name, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="homefarm", description="The render worker that turns your "
                                     "GPU PC into the Blender render node of your web app.\n"
                                     "With no command, it opens the tray app.",
                                     epilog="examples:\n  homefarm                 the tray app\n"
                                            "  homefarm doctor          what works on this PC and what to fix\n"
                                            "  homefarm login --server https://render.example.com\n"
                                            "  homefarm serve           the job server, for a web app\n\n"
                                            "exit status: 0 done; 1 it did not work (the message says why; "
                                            "doctor: a required check failed); 2 a command line homefarm cannot "
                                            "read.\n`homefarm COMMAND --help` says more of each command.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"homefarm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    server_cli.add_parser(sub, _command)

    run = _command(sub, "run", help="run the worker without a GUI",
                         description="Runs the worker in this terminal, without the tray: for a render box or a "
                         "service. Ctrl+C or SIGTERM stops it cleanly: a render under way stops and its job goes "
                         "back to the server. It logs to homefarm.log in the log folder (`homefarm doctor` shows "
                         "where).")
    run.add_argument("--max-jobs", type=int, help="exit after this many jobs")
    run.add_argument("--token-file", metavar="PATH",
                     help="read the worker token from this file (only its owner may read it), for a service "
                     "without a keyring; also HOMEFARM_TOKEN_FILE. Under systemd, the unit's credential "
                     "homefarm-token is read by itself")
    run.set_defaults(func=cmd_run)

    demo = _command(sub, "demo", help="render the sample scene through a local server, end to end")
    demo.add_argument("--blender", help="the Blender executable to use")
    demo.add_argument("--device", choices=config_mod.DEVICES)
    demo.set_defaults(func=cmd_demo)

    doctor = _command(sub, "doctor", help="check Blender, the GPU, the keyring, the server and the token",
                            description="Checks what the worker needs and says what to fix. Exit status 1 when "
                            "a required check fails.")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON, for a script")
    doctor.add_argument("--token-file", metavar="PATH", help="check the token in this file, as `run --token-file`")
    doctor.set_defaults(func=cmd_doctor)

    login = _command(sub, "login", help="store the worker token for a server in the OS keyring",
                           description="Checks a worker token with the server and keeps it in the OS keyring. "
                           "The token is typed at a hidden prompt or piped with --token-stdin; never give it as "
                           "an argument, where other users of the PC can see it.",
                           epilog="example:\n  homefarm login --server https://render.example.com\n"
                           "  homefarm login --server https://render.example.com --token-stdin < token.txt",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    login.add_argument("--server", help="the job server's URL")
    login.add_argument("--token-stdin", action="store_true", help="read the token from standard input")
    login.set_defaults(func=cmd_login)

    logout = _command(sub, "logout", help="remove the worker token from the OS keyring")
    logout.set_defaults(func=cmd_logout)

    pause = _command(sub, "pause", help="pause the worker: 30m, 1h, tomorrow or indefinitely",
                           description="Pauses the worker on this PC (the tray's or `homefarm run`'s); a "
                           "render under way stops and its job goes back to the server.")
    pause.add_argument("duration", nargs="?", default="indefinitely",
                       help="how long: a number and a unit, such as 90s, 30m, 1.5h or 2d; tomorrow (until "
                       "the next morning); or "
                       "indefinitely, until `homefarm resume` (default)")
    pause.set_defaults(func=cmd_pause)

    resume = _command(sub, "resume", help="end a pause you started")
    resume.set_defaults(func=cmd_resume)

    stats = _command(sub, "stats", help="jobs, render time, GPU energy and its cost, per day and month")
    stats.add_argument("--last", type=int, default=10, help="how many recent jobs to list (default 10)")
    stats.add_argument("--json", action="store_true", help="print the figures as JSON, for a script")
    stats.set_defaults(func=cmd_stats)
    activity = _command(sub, "activity", help="a window of what this PC did: jobs, energy, GPU and pauses, drawn")
    activity.set_defaults(func=cmd_activity)

    blender = _command(sub, "blender", help="list, add or remove the Blenders jobs render with",
                       description="Lists the Blenders found on this PC and those homefarm installed; adds the "
                                   "newest release of a series (PyPI's Blender module, about 1 GB) or removes one.",
                       epilog="examples:\n  homefarm blender list\n  homefarm blender add 4.5\n"
                              "  homefarm blender remove 4.5", formatter_class=argparse.RawDescriptionHelpFormatter)
    blender.add_argument("action", nargs="?", choices=("list", "add", "remove"), default="list")
    blender.add_argument("version", nargs="?", help="a Blender series such as 4.5")
    blender.set_defaults(func=cmd_blender)

    auto = _command(sub, "autostart", help="start homefarm when you sign in: on, off or status")
    auto.add_argument("action", choices=("on", "off", "status"), nargs="?", default="status")
    auto.set_defaults(func=cmd_autostart)

    cfg = _command(sub, "config", help="show or change the configuration",
                         description="Shows every setting as TOML, or one; changes one, checked first.",
                         epilog="examples:\n  homefarm config show guard.max_gpu_temp_c\n"
                         "  homefarm config set guard.render_only 'mon-fri 01:00-08:00'\n"
                         "  homefarm config set guard.games '[\"eldenring.exe\", \"cs2.exe\"]'\n"
                         "  homefarm config show --json",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    cfg.add_argument("action", nargs="?", choices=("show", "set"), default="show")
    cfg.add_argument("key", nargs="?", help="a key such as blender.device (all keys: homefarm config)")
    cfg.add_argument("value", nargs="?", help="TOML, or a bare word for text; one word for a list is a list of one")
    cfg.add_argument("--json", action="store_true", help="print the settings as JSON, for a script")
    cfg.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        try:
            from worker_app.tray.main import main as tray_main
        except ImportError as error:
            parser.print_help()
            print(f"\nThe tray app needs Qt ({error.name} is not installed): pip install 'homefarm[tray]'. "
                  "The commands above work without it.")
            return 0
        return tray_main()
    if args.command == "serve":  # the server's own command: no worker settings, folders or packages
        return int(args.func(args))
    if args.command == "config" and args.action == "set" and (args.key is None or args.value is None):
        parser.error("config set needs KEY VALUE, e.g. `homefarm config set blender.device GPU`")
    paths = config_mod.Paths.default()
    _setup_logging(args.verbose, paths.log_dir / "homefarm.log" if args.command == "run" else None,
                   quiet=args.quiet or args.command in ("demo", "doctor", "login", "logout", "config"))
    try:
        return int(args.func(args, paths))
    except ModuleNotFoundError as error:
        if error.name not in WORKER_PACKAGES:
            raise
        raise SystemExit(f"homefarm: the worker's packages are not installed ({error.name}); install them with: "
                         "pip install 'homefarm[worker]' (or 'homefarm[tray]' for the tray app)") from None

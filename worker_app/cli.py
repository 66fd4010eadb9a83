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

log = logging.getLogger("homefarm")


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


def cmd_serve(args, paths: config_mod.Paths) -> int:
    try:
        from worker_app.server import JobServer
        from worker_app.server.logs import setup_server_logging
    except ImportError as error:
        raise SystemExit(f"homefarm: the job server's packages are not installed ({error.name}); "
                         "install them with: pip install 'homefarm[server]'") from None

    data_dir = Path(args.data_dir) if args.data_dir else paths.server_dir
    db_url = args.db or os.environ.get("HOMEFARM_DB_URL") or None
    if args.serve_action == "tokens":
        return _cmd_tokens(args, data_dir, db_url)
    setup_server_logging(args.log_format or os.environ.get("HOMEFARM_LOG_FORMAT", "text"))
    storage = args.storage or os.environ.get("HOMEFARM_STORAGE_URL") or None
    webhook_url = args.webhook_url or os.environ.get("HOMEFARM_WEBHOOK_URL") or None
    try:
        server = JobServer(data_dir, host=args.host, port=args.port, db_url=db_url,
                           claim_wait_max=args.claim_wait_max, metrics=args.metrics, db_pool=args.db_pool,
                           latest_worker_version=args.latest_worker_version,
                           min_worker_version=args.min_worker_version, storage_url=storage,
                           base_path=args.base_path or os.environ.get("HOMEFARM_BASE_PATH", ""),
                           webhook_url=webhook_url, webhook_secret=os.environ.get("HOMEFARM_WEBHOOK_SECRET"),
                           keep_failed=args.keep_failed_hours * 3600, keep_outputs=args.keep_outputs_days * 86400)
    except OSError as error:
        raise SystemExit(f"homefarm: cannot serve on {args.host}:{args.port}: {error.strerror or error}; "
                         "choose another with --port") from None
    except ValueError as error:
        text = str(error)
        known = text.split(":")[0] in ("storage", "webhook", "base path")
        raise SystemExit(f"homefarm: {text if known else '--db: ' + text}") from None
    except Exception as error:  # the database: unreachable, refused, a schema from a newer server
        log.debug("database error", exc_info=True)
        raise SystemExit(f"homefarm: cannot use the database{_where(db_url)}: {_first_line(error)}") from None
    if args.new_token:
        token = server.store.create_token(args.new_token, "homefarm serve --new-token")
        print(f"new {args.new_token} token (shown once, stored only as a hash):\n  {token}")
        server.sock.close()
        server.store.close()
        return 0
    tokens = server.ensure_tokens()
    if tokens and args.print_tokens:
        print("First start: made these tokens. They are shown once and stored only as hashes.")
        print(f"  web app token (for /api/v1):        {tokens['app']}")
        print(f"  worker token  (homefarm login):      {tokens['worker']}")
    elif tokens:
        where = _write_first_tokens(data_dir, tokens)
        print(f"First start: made a web app token and a worker token; they are in {where}, readable by this "
              "user only. Copy them where they belong, then delete the file. `homefarm serve tokens` makes "
              "more and revokes them.")
    if not config_mod.is_loopback(args.host):
        print("note: this server speaks plain http; put it behind a TLS reverse proxy before workers "
              "reach it over a network")
    print(f"homefarm job server on {server.url} (data in {data_dir}, database: {server.store.describe()})",
          flush=True)
    server.serve_forever()  # until SIGTERM or Ctrl+C: waiting claims are answered, requests finish
    server.store.close()
    return 0


def _write_first_tokens(data_dir: Path, tokens: dict[str, str]) -> Path:
    """The first tokens in a file only its owner can read, never in the log a container platform keeps."""
    path = data_dir / "first-start-tokens.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# homefarm job server: the tokens of its first start (stored on the server only as hashes)\n"
                  f"app_token={tokens['app']}\nworker_token={tokens['worker']}\n")
    return path


def _cmd_tokens(args, data_dir: Path, db_url: str | None) -> int:
    """``homefarm serve tokens create|list|revoke``: on the server's database, from any machine that reaches it."""
    from worker_app.server.store import NotFound, Store
    url = db_url or f"sqlite:///{data_dir / 'homefarm-server.sqlite3'}"
    if url.startswith("sqlite:///"):
        data_dir.mkdir(parents=True, exist_ok=True)
    try:
        store = Store(url)
    except Exception as error:
        log.debug("database error", exc_info=True)
        raise SystemExit(f"homefarm: cannot use the database{_where(db_url)}: {_first_line(error)}") from None
    try:
        if args.tokens_action == "create":
            token = store.create_token(args.kind, args.label)
            print(f"new {args.kind} token{f' ({args.label})' if args.label else ''}, shown once and stored only "
                  f"as a hash:\n  {token}")
        elif args.tokens_action == "list":
            found = store.list_tokens()
            if not found:
                print("no tokens yet; `homefarm serve tokens create --kind app` makes one")
            for token in found:
                used = _when(token["last_used"]) if token["last_used"] else "never used"
                print(f"{token['id']}  {token['kind']:<6}  {token['label'] or '-':<28}  "
                      f"created {_when(token['created'])}  {'last used ' + used if token['last_used'] else used}")
        else:
            try:
                gone = store.revoke_token(args.token_id)
            except NotFound as error:
                raise SystemExit(f"homefarm: {error}; `homefarm serve tokens list` shows the ids") from None
            print(f"revoked {gone['kind']} token {gone['id']} ({gone['label'] or 'no label'}); servers refuse it "
                  "within 10 seconds")
    finally:
        store.close()
    return 0


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def _where(db_url: str | None) -> str:
    if not db_url:
        return ""
    from sqlalchemy.engine import make_url
    try:
        url = make_url(db_url)
    except Exception:
        return ""
    return f" at {url.host or url.database}"


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0] if text else type(error).__name__


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
    try:
        blenders = find_all(cfg.blender_path)
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

    serve = _command(sub, "serve", help="run the reference job server")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1; 0.0.0.0 behind a TLS proxy)")
    serve.add_argument("--port", type=int, default=8750, help="the port (default 8750; 0 picks a free one)")
    serve.add_argument("--data-dir", help="where the database and outputs live (default: the data dir)")
    serve.add_argument("--db", metavar="URL", help="the database: sqlite:///path (default: in the data dir), "
                       "postgresql://user:pass@host/db or mysql://user:pass@host/db (also HOMEFARM_DB_URL)")
    serve.add_argument("--db-pool", type=int, default=10, metavar="N",
                       help="connections this process keeps to PostgreSQL or MySQL (default 10); mind your "
                            "database plan's connection limit across all server processes")
    serve.add_argument("--claim-wait-max", type=float, default=C.CLAIM_WAIT_MAX, metavar="S",
                       help="the longest a claim waits for a job; keep it below your proxy's idle timeout "
                            f"(default {C.CLAIM_WAIT_MAX:g} s)")
    serve.add_argument("--metrics", action="store_true", help="serve Prometheus metrics at /metrics")
    serve.add_argument("--log-format", choices=("text", "json"), help="json: one JSON object per line "
                       "(also HOMEFARM_LOG_FORMAT)")
    serve.add_argument("--storage", metavar="URL", help="where scenes and outputs live: a folder (default: the "
                       "data dir) or s3://bucket/prefix for S3, R2 or any S3-compatible store, set up with the "
                       "AWS variables (also HOMEFARM_STORAGE_URL)")
    serve.add_argument("--base-path", metavar="PATH", help="the path prefix a proxy mounts the server under, "
                       "e.g. /render (also HOMEFARM_BASE_PATH; else the proxy's X-Forwarded-Prefix)")
    serve.add_argument("--webhook-url", metavar="URL", help="POST each job's end here, signed with "
                       "HOMEFARM_WEBHOOK_SECRET (also HOMEFARM_WEBHOOK_URL)")
    serve.add_argument("--keep-failed-hours", type=float, default=1.0, metavar="H",
                       help="delete the outputs of failed and canceled jobs this long after they end (default 1)")
    serve.add_argument("--keep-outputs-days", type=float, default=30.0, metavar="D",
                       help="delete every job's outputs this long after it ends; 0 keeps them (default 30)")
    serve.add_argument("--print-tokens", action="store_true",
                       help="on the first start, print the new tokens instead of writing them to a file")
    serve.add_argument("--new-token", choices=("app", "worker"), help=argparse.SUPPRESS)
    serve_sub = serve.add_subparsers(dest="serve_action", metavar="ACTION")
    tokens = _command(serve_sub, "tokens", help="create, list or revoke the server's tokens")
    tokens_sub = tokens.add_subparsers(dest="tokens_action", required=True, metavar="create|list|revoke")
    create = _command(tokens_sub, "create", help="make a token (shown once)")
    create.add_argument("--kind", choices=("app", "worker"), required=True,
                        help="app: the web app's API; worker: a PC's `homefarm login`")
    create.add_argument("--label", default="", help="what it is for, e.g. 'studio PC'")
    _command(tokens_sub, "list", help="the tokens: id, kind, label, created, last used")
    revoke = _command(tokens_sub, "revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", metavar="ID", help="the id `tokens list` shows (6 characters or more)")
    serve.add_argument("--latest-worker-version", help="tell workers older than this that an update exists")
    serve.add_argument("--min-worker-version", help="workers older than this stop claiming and ask for an update")
    serve.set_defaults(func=cmd_serve)

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
    if args.command == "config" and args.action == "set" and (args.key is None or args.value is None):
        parser.error("config set needs KEY VALUE, e.g. `homefarm config set blender.device GPU`")
    paths = config_mod.Paths.default()
    _setup_logging(args.verbose, paths.log_dir / "homefarm.log" if args.command == "run" else None,
                   quiet=args.quiet or args.command in ("demo", "doctor", "login", "logout", "config"))
    return args.func(args, paths)

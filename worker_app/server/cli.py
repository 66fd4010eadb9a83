"""The job server's commands: ``homefarm serve`` and ``homefarm serve tokens``. They need the server's packages
(``pip install 'homefarm[server]'``) and none of the worker's: no Qt, no NVML, no keyring."""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import platformdirs

from worker_app.protocol import limits
from worker_app.protocol.fields import is_loopback
from worker_app.server.origin import LOOPBACK

log = logging.getLogger("homefarm")

Command = Callable[..., argparse.ArgumentParser]


def default_data_dir() -> Path:
    """Where the server keeps its database and files unless told: the ``server`` folder of homefarm's data dir
    (``$HOMEFARM_HOME/data``, else the platform's), as ``config.Paths.server_dir`` has it."""
    home = os.environ.get("HOMEFARM_HOME")
    if home:
        return Path(home).expanduser().resolve() / "data" / "server"
    return Path(platformdirs.PlatformDirs("homefarm", appauthor=False).user_data_dir) / "server"


def add_parser(sub: Any, command: Command) -> None:
    """``serve`` and its ``tokens`` commands on ``homefarm``'s parser; ``command`` makes a subcommand."""
    _command = command
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
    serve.add_argument("--claim-wait-max", type=float, default=limits.CLAIM_WAIT_MAX, metavar="S",
                       help="the longest a claim waits for a job; keep it below your proxy's idle timeout "
                            f"(default {limits.CLAIM_WAIT_MAX:g} s)")
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
    serve.add_argument("--new-token", choices=("app", "worker", "dashboard"), help=argparse.SUPPRESS)
    serve.add_argument("--lease-ttl", type=float, default=limits.LEASE_TTL, help=argparse.SUPPRESS)  # tests
    serve_sub = serve.add_subparsers(dest="serve_action", metavar="ACTION")
    tokens = _command(serve_sub, "tokens", help="create, list or revoke the server's tokens")
    tokens_sub = tokens.add_subparsers(dest="tokens_action", required=True, metavar="create|list|revoke")
    create = _command(tokens_sub, "create", help="make a token (shown once)")
    create.add_argument("--kind", choices=("app", "worker", "dashboard"), required=True,
                        help="app: the web app's API; worker: a PC's `homefarm login`; dashboard: signs in to "
                             "the dashboard and nothing else")
    create.add_argument("--label", default="", help="what it is for, e.g. 'studio PC'")
    _command(tokens_sub, "list", help="the tokens: id, kind, label, created, last used")
    revoke = _command(tokens_sub, "revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", metavar="ID", help="the id `tokens list` shows (6 characters or more)")
    serve.add_argument("--shutdown-grace", type=float, default=25.0, metavar="S",
                       help="after SIGTERM everything ends within this, slow uploads and webhook deliveries "
                            "included (default 25; keep it under the platform's stop timeout)")
    serve.add_argument("--origin-secret", metavar="SECRET", help="refuse (403) every request but the health "
                       "checks without this value in X-Origin-Verify, which only your CDN sends (also "
                       "HOMEFARM_ORIGIN_SECRET; prefer the variable: a command line is visible to the machine)")
    serve.add_argument("--forwarded-allow-ips", metavar="IPS", default=None,
                       help="the proxies whose X-Forwarded-Proto/Host/Prefix count, comma-separated addresses or "
                            "networks, * for any (default 127.0.0.1,::1; with --origin-secret the CDN's always "
                            "count; also HOMEFARM_FORWARDED_ALLOW_IPS)")
    serve.add_argument("--webhook-allow-private", action="store_true",
                       help="let a job's own webhook_url be a loopback, private or link-local address (a test "
                            "setup; never on a server the internet reaches)")
    serve.add_argument("--latest-worker-version", help="tell workers older than this that an update exists")
    serve.add_argument("--min-worker-version", help="workers older than this stop claiming and ask for an update")
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """``homefarm serve``: the job server on this machine, until SIGTERM or Ctrl+C."""
    try:
        from worker_app.server import JobServer
        from worker_app.server.logs import setup_server_logging
    except ImportError as error:
        raise SystemExit(f"homefarm: the job server's packages are not installed ({error.name}); "
                         "install them with: pip install 'homefarm[server]'") from None

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
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
                           keep_failed=args.keep_failed_hours * 3600, keep_outputs=args.keep_outputs_days * 86400,
                           shutdown_grace=args.shutdown_grace, lease_ttl=args.lease_ttl,
                           origin_secret=args.origin_secret or os.environ.get("HOMEFARM_ORIGIN_SECRET") or None,
                           forwarded_allow_ips=args.forwarded_allow_ips
                           or os.environ.get("HOMEFARM_FORWARDED_ALLOW_IPS") or LOOPBACK,
                           webhook_allow_private=args.webhook_allow_private)
    except OSError as error:
        raise SystemExit(f"homefarm: cannot serve on {args.host}:{args.port}: {error.strerror or error}; "
                         "choose another with --port") from None
    except ValueError as error:
        text = str(error)
        known = text.split(":")[0] in ("storage", "webhook", "base path", "forwarded-allow-ips")
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
    if not is_loopback(args.host):
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


def _cmd_tokens(args: argparse.Namespace, data_dir: Path, db_url: str | None) -> int:
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
            for row in found:
                used = _when(row["last_used"]) if row["last_used"] else "never used"
                print(f"{row['id']}  {row['kind']:<6}  {row['label'] or '-':<28}  "
                      f"created {_when(row['created'])}  {'last used ' + used if row['last_used'] else used}")
        else:
            try:
                gone = store.revoke_token(args.token_id)
            except NotFound as error:
                raise SystemExit(f"homefarm: {error}; `homefarm serve tokens list` shows the ids") from None
            print(f"revoked {gone['kind']} token {gone['id']} ({gone['label'] or 'no label'}); servers refuse it "
                  "at once on PostgreSQL, else at their next poll (docs/server.md)")
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

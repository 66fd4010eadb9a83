"""homefarm's paths and its TOML configuration.

Paths come from platformdirs; ``HOMEFARM_HOME`` puts every one of them under one folder instead, for
development, tests and the demo. Reading a config validates every key and refuses an unknown key or
a bad value with the key's name and what is allowed. Writes are atomic (a temp file, then replace).
"""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import platformdirs

from worker_app import layout as L
from worker_app import constants as C
from worker_app.blender_scripts import contract as K
from worker_app.protocol.fields import DEVICES, is_loopback
from worker_app.guard.schedule import Window
from worker_app.system.files import write_atomic

APP_NAME = "homefarm"

DEVICE_TYPES = ("", *K.GPU_BACKENDS)
PAUSE_POLICIES = ("requeue", "suspend", "finish")  # core/policies.py: one class each


class ConfigError(ValueError):
    """A config value that is not allowed: ``key`` names it, ``detail`` says what is wrong (the message is both)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.detail = message


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path
    log_dir: Path

    @classmethod
    def default(cls) -> Paths:
        home = os.environ.get("HOMEFARM_HOME")
        if home:
            root = Path(home).expanduser().resolve()
            return cls(root / "config", root / "data", root / "cache", root / "logs")
        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        return cls(Path(dirs.user_config_dir), Path(dirs.user_data_dir), Path(dirs.user_cache_dir),
                   Path(dirs.user_log_dir))

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / L.JOBS

    @property
    def scene_cache(self) -> Path:
        return self.cache_dir / L.SCENES

    @property
    def outbox_file(self) -> Path:
        return self.data_dir / L.OUTBOX

    @property
    def pause_file(self) -> Path:
        return self.data_dir / L.PAUSE

    @property
    def stats_file(self) -> Path:
        return self.data_dir / L.STATS

    @property
    def warm_dir(self) -> Path:
        return self.data_dir / L.WARM

    @property
    def tray_lock(self) -> Path:
        return self.data_dir / L.TRAY_LOCK

    @property
    def server_dir(self) -> Path:
        return self.data_dir / L.SERVER


@dataclass(frozen=True)
class Config:
    server_url: str = "http://127.0.0.1:8750"
    allow_insecure_http: bool = False
    worker_name: str = field(default_factory=socket.gethostname)
    claim_wait_s: float = C.CLAIM_WAIT_DEFAULT
    blender_path: str = ""
    device: str = "AUTO"
    device_type: str = ""  # empty: the best backend Blender offers
    gpu_indices: tuple[int, ...] = ()  # empty: every GPU of that backend
    confine_writes: bool = True  # Linux: Landlock lets Blender write only into the job's folder
    warm: bool = True  # keep one Blender open between jobs: small jobs skip Blender's start-up
    warm_idle_s: float = C.WARM_IDLE_S  # a warm Blender without a job ends after this long (memory, VRAM freed)
    reuse_scene: bool = True  # and keeps the last job's scene loaded for the next job on the same scene
    # A job whose scene needs a Blender this PC lacks: "ask" the owner (the tray; headless: as "no"), "yes" install
    # it on the job's way, "no" leave the job to a PC that has it (render/installs.py)
    auto_install: str = "ask"
    blender_sources: tuple[str, ...] = ("archives", "pypi")  # where Blenders come from, in this order
    blender_mirror: str = "https://download.blender.org/release"  # the official archives, or a mirror of them
    keep_unused_days: float = 30.0  # a Blender homefarm installed that no job used this long is removed (0: never)
    # [guard]: when to step aside for the owner (worker_app/guard/)
    pause_while_gaming: bool = True
    games: tuple[str, ...] = ()
    game_folders: tuple[str, ...] = ()
    not_games: tuple[str, ...] = ()  # programs never to pause for (a launcher, a tool)
    foreign_gpu_load_percent: int = 30
    foreign_gpu_seconds: float = 5.0
    full_screen_hint: bool = True
    pause_when_active: bool = False
    active_idle_s: float = 120.0
    render_only: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    max_gpu_temp_c: int = 85
    max_gpu_power_w: float = 0.0
    hold_off_s: float = 60.0
    pause_policy: str = "requeue"
    check_interval_s: float = 1.0
    gpu_interval_s: float = 2.0
    # [power]
    keep_awake: bool = True  # keep the PC from sleeping while a job is held (never the display)
    # [share]: what the server's dashboard may show of this PC besides the kind of pause
    share_program_names: bool = False
    # [notify]
    notify_gaming: bool = True
    notify_jobs: bool = False
    # [storage]
    cache_max_gb: float = 20.0
    thumbnails_mb: float = 50.0  # the activity window's small copies of each job's first output
    min_free_gb: float = 2.0
    # [energy]
    price_per_kwh: float = 0.30
    currency: str = "EUR"

    def check_url(self) -> None:
        check_server_url(self.server_url, self.allow_insecure_http)


# (section, key) -> (Config attribute, checker)
def _bool(key, value):
    if not isinstance(value, bool):
        raise ConfigError(key, "must be true or false")
    return value


def _text(key, value):
    if not isinstance(value, str):
        raise ConfigError(key, "must be a string")
    return value


def _wait(key, value):
    # The range stays what it was (configs written before keep working); the server's cap bounds it anyway.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= C.CLAIM_WAIT_SETTING_MAX:
        raise ConfigError(key, f"must be a number of seconds from 1 to {C.CLAIM_WAIT_SETTING_MAX:g}")
    return float(value)


def _device(key, value):
    if value not in DEVICES:
        raise ConfigError(key, f"must be one of {', '.join(DEVICES)}")
    return value


def _device_type(key, value):
    if value not in DEVICE_TYPES:
        raise ConfigError(key, f"must be one of {', '.join(repr(t) for t in DEVICE_TYPES)} "
                               "(empty: the best one Blender offers)")
    return value


def _indices(key, value):
    if (not isinstance(value, list) or len(value) > 16
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 64 for i in value)):
        raise ConfigError(key, "must be a list of GPU numbers such as [0, 1] (empty: all GPUs)")
    return tuple(value)


def _strings(key, value):
    if not isinstance(value, list) or len(value) > 500 or not all(isinstance(v, str) and v for v in value):
        example = next((s.example for s in SETTINGS if s.dotted == key and s.example), '["one", "two"]')
        raise ConfigError(key, "must be a list of strings, e.g. " + example)
    return tuple(value)


def _windows(key, value):
    value = _strings(key, value)
    for text in value:
        try:
            Window.parse(text)
        except ValueError as error:
            raise ConfigError(key, str(error)) from None
    return value


def _number_in(lo, hi, integer=False):
    def check(key, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi \
                or (integer and not isinstance(value, int)):
            kind = "a whole number" if integer else "a number"
            raise ConfigError(key, f"must be {kind} from {lo:g} to {hi:g}")
        return int(value) if integer else float(value)
    return check


def _choice(*choices):
    def check(key, value):
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(choices)}")
        return value
    return check


def _sources(key, value):
    value = _strings(key, value)
    wrong = [v for v in value if v not in ("archives", "pypi")]
    if wrong or not value or len(set(value)) != len(value):
        raise ConfigError(key, 'must list archives and/or pypi, each once, in the order to try them, e.g. '
                               '["archives", "pypi"]')
    return value


def _url(key, value):
    _text(key, value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(key, "must be an http:// or https:// URL such as https://render.example.com")
    return value.rstrip("/")


@dataclass(frozen=True)
class Setting:
    """One key of the config file: where it lives, the Config attribute it fills, its check, and how the tray's
    Settings dialog shows it (no label: the file and `homefarm config` only). ``SETTINGS`` is the one list:
    ``KEYS``, the dialog's fields and the list examples in errors come from it; tests check that ``Config``'s
    fields and defaults and the commented default file agree with it."""
    section: str
    key: str
    attr: str
    check: Callable[[str, object], object]
    label: str = ""
    kind: str | tuple[str, ...] = ""  # in the dialog: text, lines, indices, number, blender, or the choices
    example: str = ""  # for a list key: what a right value looks like, in its error
    core: str = ""  # the field of the worker core's Settings it fills (core/settings.py), if the core uses it

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.key}"


SETTINGS: tuple[Setting, ...] = (
    Setting("server", "url", "server_url", _url, "Server URL", "text"),
    Setting("server", "allow_insecure_http", "allow_insecure_http", _bool, core="allow_insecure_http"),
    Setting("worker", "name", "worker_name", _text, "Worker name", "text", core="name"),
    Setting("worker", "claim_wait_s", "claim_wait_s", _wait, core="claim_wait"),
    Setting("blender", "path", "blender_path", _text, "Blender", "blender"),
    Setting("blender", "device", "device", _device, "Render device", DEVICES, core="device"),
    Setting("blender", "device_type", "device_type", _device_type, "GPU backend", DEVICE_TYPES,
            core="device_type"),
    Setting("blender", "gpu_indices", "gpu_indices", _indices, "GPUs (numbers, empty: all)", "indices",
            core="gpu_indices"),
    Setting("blender", "confine_writes", "confine_writes", _bool, core="confine_writes"),
    Setting("blender", "warm", "warm", _bool, core="warm"),
    Setting("blender", "warm_idle_s", "warm_idle_s", _number_in(5, 86400), core="warm_idle_s"),
    Setting("blender", "reuse_scene", "reuse_scene", _bool, core="reuse_scene"),
    Setting("blender", "auto_install", "auto_install", _choice("ask", "yes", "no"),
            "Blender a job needs (ask, yes, no)", ("ask", "yes", "no"), core="auto_install"),
    Setting("blender", "sources", "blender_sources", _sources, example='["archives", "pypi"]',
            core="blender_sources"),
    Setting("blender", "mirror", "blender_mirror", _url, core="blender_mirror"),
    Setting("blender", "keep_unused_days", "keep_unused_days", _number_in(0, 3650)),
    Setting("guard", "pause_while_gaming", "pause_while_gaming", _bool),
    Setting("guard", "games", "games", _strings, "More games (one per line)", "lines", '["eldenring.exe", "cs2.exe"]'),
    Setting("guard", "game_folders", "game_folders", _strings, example='["D:\\Games"]'),
    Setting("guard", "not_games", "not_games", _strings, "Never pause for (one per line)", "lines", '["obs64.exe"]'),
    Setting("guard", "foreign_gpu_load_percent", "foreign_gpu_load_percent", _number_in(0, 100, integer=True)),
    Setting("guard", "foreign_gpu_seconds", "foreign_gpu_seconds", _number_in(0, 3600)),
    Setting("guard", "full_screen_hint", "full_screen_hint", _bool),
    Setting("guard", "pause_when_active", "pause_when_active", _bool),
    Setting("guard", "active_idle_s", "active_idle_s", _number_in(5, 86400)),
    Setting("guard", "render_only", "render_only", _windows, "Render only during (one window per line)", "lines",
            '["mon-fri 01:00-08:00", "18:00-23:00"]'),
    Setting("guard", "never", "never", _windows, "Never render during", "lines", '["sat-sun 10:00-22:00"]'),
    Setting("guard", "max_gpu_temp_c", "max_gpu_temp_c", _number_in(0, 120, integer=True)),
    Setting("guard", "max_gpu_power_w", "max_gpu_power_w", _number_in(0, 2000)),
    Setting("guard", "hold_off_s", "hold_off_s", _number_in(0, 3600), "Resume after the game ends (s)", "number"),
    Setting("guard", "pause_policy", "pause_policy", _choice(*PAUSE_POLICIES), "When pausing a job", PAUSE_POLICIES,
            core="pause_policy"),
    Setting("guard", "check_interval_s", "check_interval_s", _number_in(0.2, 60)),
    Setting("guard", "gpu_interval_s", "gpu_interval_s", _number_in(0.5, 60)),
    Setting("power", "keep_awake", "keep_awake", _bool, core="keep_awake"),
    Setting("share", "program_names", "share_program_names", _bool, core="share_program_names"),
    Setting("notify", "gaming", "notify_gaming", _bool),
    Setting("notify", "jobs", "notify_jobs", _bool),
    Setting("storage", "cache_max_gb", "cache_max_gb", _number_in(0.1, 100_000)),
    Setting("storage", "thumbnails_mb", "thumbnails_mb", _number_in(0, 100_000)),
    Setting("storage", "min_free_gb", "min_free_gb", _number_in(0, 100_000)),
    Setting("energy", "price_per_kwh", "price_per_kwh", _number_in(0, 100), "Electricity price per kWh", "number"),
    Setting("energy", "currency", "currency", _text, "Currency", "text"),
)
# (section, key) -> (Config attribute, checker): how the file is read
KEYS = {(s.section, s.key): (s.attr, s.check) for s in SETTINGS}


def check_server_url(url: str, allow_insecure_http: bool) -> None:
    """Plain http only to loopback, unless the owner allowed it: a token must not cross a network bare."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise ConfigError("server.url", f"{url} is plain http to another machine; use https, or set "
                                        "server.allow_insecure_http = true if you accept the risk")


def parse(data: dict) -> Config:
    values = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(section, "must be a [section]")
        for key, value in table.items():
            name = f"{section}.{key}"
            if (section, key) not in KEYS:
                allowed = ", ".join(f"{s}.{k}" for s, k in KEYS)
                raise ConfigError(name, f"unknown key (allowed: {allowed})")
            attr, checker = KEYS[(section, key)]
            try:
                values[attr] = checker(name, value)
            except ConfigError as error:  # the file's value, named: the owner finds the line to change
                message = error.detail
                raise ConfigError(name, f"{_toml_value(value)} is not allowed; it {message}") from None
    if not values.get("worker_name"):
        values.pop("worker_name", None)
    config = Config(**values)
    config.check_url()
    return config


def load(paths: Paths) -> Config:
    """Reads the config file, writing the commented default on first use."""
    if not paths.config_file.exists():
        default = resources.files("worker_app.resources").joinpath("default_config.toml").read_text(encoding="utf-8")
        write_atomic(paths.config_file, default)
    try:
        data = tomllib.loads(paths.config_file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(paths.config_file), f"is not valid TOML: {error}") from None
    return parse(data)


def set_value(paths: Paths, dotted: str, raw: str) -> Config:
    """Changes one key from text as typed on a command line (TOML, or a bare word for a string)."""
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is taken as a string
    section, _, key = dotted.partition(".")
    if isinstance(value, str) and KEYS.get((section, key), (None, None))[1] in (_strings, _windows):
        value = [value]  # one item for a list: `config set guard.games eldenring.exe`
    return set_values(paths, {dotted: value})


def check_values(values: dict) -> dict[str, str]:
    """Every problem in ``values`` ({"section.key": value}), by key; empty when all are allowed."""
    problems = {}
    for dotted, value in values.items():
        section, _, key = dotted.partition(".")
        if (section, key) not in KEYS:
            allowed = ", ".join(f"{s}.{k}" for s, k in KEYS)
            problems[dotted] = f"unknown key (allowed: {allowed})"
            continue
        try:
            KEYS[(section, key)][1](dotted, value)
        except ConfigError as error:
            problems[dotted] = error.detail
    return problems


def set_values(paths: Paths, values: dict) -> Config:
    """Changes several keys at once, all validated first, keeping the file's comments; atomic."""
    problems = check_values(values)
    if problems:
        key, message = next(iter(problems.items()))
        raise ConfigError(key, message)
    load(paths)
    text = paths.config_file.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    for dotted, value in values.items():
        section, _, key = dotted.partition(".")
        data.setdefault(section, {})[key] = value
    config = parse(data)
    for dotted, value in values.items():
        section, _, key = dotted.partition(".")
        text = _replace_key(text, section, key, _toml_value(value))
    write_atomic(paths.config_file, text)
    return config


def value_of(config: Config, dotted: str):
    """The current value of a config key, as TOML would hold it."""
    section, _, key = dotted.partition(".")
    value = getattr(config, KEYS[(section, key)][0])
    return list(value) if isinstance(value, tuple) else value


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _replace_key(text: str, section: str, key: str, value: str) -> str:
    lines = text.splitlines()
    current = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if current == section:
                lines.insert(i, f"{key} = {value}")
                return "\n".join(lines) + "\n"
            current = stripped[1:-1].strip()
        elif current == section and stripped.split("=", 1)[0].strip() == key and "=" in stripped:
            lines[i] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    if current != section:
        lines += ["", f"[{section}]"]
    lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"

import pytest

from worker_app import config as C
from worker_app.system.credentials import CredentialError, TokenStore
from keyring.backends import fail
from support.keyring_file_backend import MemoryKeyring


def test_first_load_writes_the_commented_default(tmp_path, monkeypatch):
    paths = C.Paths.default()
    cfg = C.load(paths)
    assert paths.config_file.is_file()
    assert cfg.server_url == "http://127.0.0.1:8750" and cfg.device == "AUTO"
    assert "# The job server's address" in paths.config_file.read_text()
    assert str(paths.config_file).startswith(str(tmp_path))


def test_set_value_keeps_comments_and_validates():
    paths = C.Paths.default()
    C.set_value(paths, "blender.device", "GPU")
    C.set_value(paths, "worker.claim_wait_s", "20")
    C.set_value(paths, "server.url", "https://render.example.com/")
    cfg = C.load(paths)
    assert (cfg.device, cfg.claim_wait_s, cfg.server_url) == ("GPU", 20.0, "https://render.example.com")
    assert "# Render device preference" in paths.config_file.read_text()


@pytest.mark.parametrize("key, value, message", [
    ("blender.device", "TPU", "blender.device: must be one of AUTO, GPU, CPU"),
    ("worker.claim_wait_s", "600", "worker.claim_wait_s: must be a number of seconds from 1 to 60"),
    ("server.url", "ftp://x", "server.url: must be an http:// or https:// URL"),
    ("server.url", "http://render.example.com", "server.url: http://render.example.com is plain http"),
    ("server.allow_insecure_http", "yes", "server.allow_insecure_http: must be true or false"),
    ("worker.colour", "red", "worker.colour: unknown key (allowed: server.url"),
])
def test_bad_values_are_refused_with_the_key_and_what_is_allowed(key, value, message):
    paths = C.Paths.default()
    C.load(paths)
    before = paths.config_file.read_text()
    with pytest.raises(C.ConfigError) as caught:
        C.set_value(paths, key, value)
    assert str(caught.value).startswith(message)
    assert paths.config_file.read_text() == before


def test_plain_http_to_another_machine_needs_the_owner_s_consent():
    with pytest.raises(C.ConfigError):
        C.check_server_url("http://192.0.2.10:8750", allow_insecure_http=False)
    C.check_server_url("http://192.0.2.10:8750", allow_insecure_http=True)
    for url in ("http://127.0.0.1:8750", "http://localhost:1", "http://[::1]:8750", "https://a.example"):
        C.check_server_url(url, allow_insecure_http=False)


def test_broken_toml_names_the_file():
    paths = C.Paths.default()
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text("[server\nurl=")
    with pytest.raises(C.ConfigError, match="is not valid TOML"):
        C.load(paths)


def test_token_store_round_trip():
    store = TokenStore(MemoryKeyring())
    assert store.get("https://a.example") is None
    store.set("https://a.example/", "secret-token")
    assert store.get("https://a.example") == "secret-token"
    assert store.delete("https://a.example") is True
    assert store.delete("https://a.example") is False


def test_no_keyring_backend_says_how_to_fix_it_and_never_writes_a_file(tmp_path):
    store = TokenStore(fail.Keyring())
    with pytest.raises(CredentialError, match="Secret Service"):
        store.set("https://a.example", "secret-token")
    assert not any("secret-token" in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())


def test_a_file_held_open_for_a_moment_is_still_replaced(tmp_path, monkeypatch):
    """Windows refuses to replace a file an antivirus or viewer holds open (WinError 5/32) for a moment."""
    import os
    from worker_app.guard.manual import ManualPause
    from worker_app.system import files

    real, refusals = os.replace, []

    def held_twice(src, dst):
        if len(refusals) < 2:
            refusals.append(dst)
            raise PermissionError(13, "The process cannot access the file because it is being used by another "
                                      "process")
        real(src, dst)
    monkeypatch.setattr(files.os, "replace", held_twice)
    pause = ManualPause(tmp_path / "pause.json")
    pause.pause(seconds=60)
    assert len(refusals) == 2 and pause.check(__import__("datetime").datetime.now()) is not None
    assert [p.name for p in tmp_path.iterdir()] == ["pause.json"], "a temp file was left behind"


def test_a_file_held_open_for_good_gives_a_clear_error_and_leaves_no_temp(tmp_path, monkeypatch):
    from worker_app.system import files

    def always_held(src, dst):
        raise PermissionError(13, "held")
    monkeypatch.setattr(files.os, "replace", always_held)
    monkeypatch.setattr(files, "FIRST_DELAY", 0.001)
    with pytest.raises(PermissionError):
        files.write_atomic(tmp_path / "config.toml", "x = 1\n")
    assert list(tmp_path.iterdir()) == []


def test_the_settings_table_is_the_one_owner_of_every_key():
    # config.SETTINGS names each key once; Config, the reader (KEYS), the Settings dialog's fields and the
    # commented default file must agree with it.
    import dataclasses
    import tomllib
    from support.harness import ROOT
    from worker_app import config as config_mod
    from worker_app.core.policies import POLICIES
    table = {s.dotted: s for s in config_mod.SETTINGS}
    assert len(table) == len(config_mod.SETTINGS), "a key listed twice"
    assert {s.attr for s in config_mod.SETTINGS} == {f.name for f in dataclasses.fields(config_mod.Config)}
    assert set(config_mod.KEYS) == {(s.section, s.key) for s in config_mod.SETTINGS}
    assert set(config_mod.PAUSE_POLICIES) == set(POLICIES)
    default_text = (ROOT / "resources" / "default_config.toml").read_text(encoding="utf-8")
    default = tomllib.loads(default_text)
    in_file = {f"{section}.{key}": value for section, keys in default.items() for key, value in keys.items()}
    assert set(in_file) == set(table), "the default file documents every key, and only those"
    defaults = config_mod.Config()
    for dotted, value in in_file.items():
        if dotted == "worker.name":
            continue  # empty in the file: the computer's name
        assert config_mod.value_of(defaults, dotted) == value, dotted
    assert config_mod.parse(default) == config_mod.Config(worker_name=defaults.worker_name)
    from worker_app.tray.settings import FIELDS
    assert [key for key, _label, _kind in FIELDS] == [s.dotted for s in config_mod.SETTINGS if s.label]
    assert all(kind in ("text", "lines", "indices", "number", "blender") or isinstance(kind, tuple)
               for _key, _label, kind in FIELDS)


def test_the_cores_settings_come_from_the_table():
    import dataclasses
    from worker_app import config as config_mod
    from worker_app.core.settings import Settings
    from worker_app.runtime import settings
    marked = {s.core for s in config_mod.SETTINGS if s.core}
    assert marked == {f.name for f in dataclasses.fields(Settings)} - {"max_jobs"}
    cfg = config_mod.Config(worker_name="studio", claim_wait_s=12.0, gpu_indices=(1,), pause_policy="finish",
                            keep_awake=False, warm=False)
    made = settings(cfg, max_jobs=3)
    assert (made.name, made.claim_wait, made.gpu_indices, made.pause_policy, made.keep_awake, made.warm,
            made.max_jobs) == ("studio", 12.0, (1,), "finish", False, False, 3)

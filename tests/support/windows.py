"""Stand-ins for what only Windows has, each with the shape of the real thing: winreg's functions over a dict,
and a Steam install as Steam lays it out (its registry values, libraryfolders.vdf, an app's manifest)."""

from __future__ import annotations


class FakeWinreg:
    """The winreg functions the Windows backend calls, over a dict of {key path: {name: value}}."""
    HKEY_CURRENT_USER = "HKCU"
    KEY_SET_VALUE = 2
    REG_SZ = 1

    def __init__(self):
        self.keys = {}

    class _Key:
        def __init__(self, path):
            self.path = path

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def OpenKey(self, root, path, reserved=0, access=0):
        if path not in self.keys:
            raise FileNotFoundError(path)
        return self._Key(path)

    def CreateKey(self, root, path):
        self.keys.setdefault(path, {})
        return self._Key(path)

    def QueryValueEx(self, key, name):
        if name not in self.keys[key.path]:
            raise FileNotFoundError(name)
        return self.keys[key.path][name], 1

    def SetValueEx(self, key, name, reserved, kind, value):
        self.keys[key.path][name] = value

    def DeleteValue(self, key, name):
        if name not in self.keys[key.path]:
            raise FileNotFoundError(name)
        del self.keys[key.path][name]


def steam_install(tmp_path, app_id: int, name: str, installdir: str):
    """A Steam folder on one "drive" and a library on another (libraryfolders.vdf), with the app's manifest in
    the second, as Steam writes them; and the registry values Steam keeps (HKCU\\Software\\Valve\\Steam)."""
    steam, library = tmp_path / "C" / "Steam", tmp_path / "D" / "SteamLibrary"
    (steam / "steamapps").mkdir(parents=True)
    (library / "steamapps" / "common" / installdir).mkdir(parents=True)
    escaped = lambda path: str(path).replace("\\", "\\\\")  # noqa: E731 - VDF escapes backslashes
    (steam / "steamapps" / "libraryfolders.vdf").write_text(
        '"libraryfolders"\n{\n\t"0"\n\t{\n\t\t"path"\t\t"%s"\n\t}\n\t"1"\n\t{\n\t\t"path"\t\t"%s"\n'
        '\t\t"apps"\n\t\t{\n\t\t\t"%d"\t\t"123"\n\t\t}\n\t}\n}\n' % (escaped(steam), escaped(library), app_id),
        encoding="utf-8")
    (library / "steamapps" / f"appmanifest_{app_id}.acf").write_text(
        '"AppState"\n{\n\t"appid"\t\t"%d"\n\t"name"\t\t"%s"\n\t"installdir"\t\t"%s"\n}\n' % (app_id, name, installdir),
        encoding="utf-8")
    registry = FakeWinreg()
    registry.keys[r"Software\Valve\Steam"] = {"RunningAppID": app_id, "SteamPath": str(steam)}
    registry.keys[rf"Software\Valve\Steam\Apps\{app_id}"] = {"Name": name, "Running": 1}
    return registry, library / "steamapps" / "common" / installdir

"""The scene cache and zip unpacking: verified content, and nothing written outside the job's folder."""

import hashlib
import io
import stat
import zipfile

import pytest

from worker_app import protocol as P
from worker_app.render.assets import AssetError, SceneCache, unpack_zip


def asset_for(data: bytes, **extra) -> P.SceneAsset:
    return P.SceneAsset(url="/x", sha256=hashlib.sha256(data).hexdigest(), size=len(data), **extra)


def downloader(data: bytes, calls: list):
    def download(out, limit):
        calls.append(1)
        out.write(data)
        return hashlib.sha256(data).hexdigest(), len(data)
    return download


def test_cache_downloads_once_and_reuses(tmp_path):
    cache, calls, data = SceneCache(tmp_path / "cache"), [], b"blend bytes" * 100
    path, hit = cache.fetch(asset_for(data), downloader(data, calls))
    assert path.read_bytes() == data and hit is False
    path2, hit2 = cache.fetch(asset_for(data), downloader(data, calls))
    assert path2 == path and hit2 is True and len(calls) == 1


def test_cache_refuses_a_wrong_sha256_and_keeps_nothing(tmp_path):
    cache = SceneCache(tmp_path / "cache")
    declared = asset_for(b"what the job promised")
    with pytest.raises(AssetError) as caught:
        cache.fetch(declared, downloader(b"what the server sent!", []))
    assert caught.value.field == "scene.sha256"
    assert list((tmp_path / "cache").iterdir()) == []


def test_cache_refuses_a_wrong_size(tmp_path):
    declared = asset_for(b"1234")
    with pytest.raises(AssetError) as caught:
        SceneCache(tmp_path / "c").fetch(declared, downloader(b"12345", []))
    assert caught.value.field == "scene.size"


def make_zip(members: dict[str, bytes], links: dict[str, str] = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()


def test_zip_unpacks_into_the_job_folder(tmp_path):
    archive = tmp_path / "scene.zip"
    archive.write_bytes(make_zip({"shot/scene.blend": b"BLENDER", "shot/tex/wood.png": b"png"}))
    blend = unpack_zip(archive, tmp_path / "job" / "scene", "shot/scene.blend")
    assert blend == (tmp_path / "job" / "scene" / "shot" / "scene.blend").resolve()
    assert (tmp_path / "job" / "scene" / "shot" / "tex" / "wood.png").read_bytes() == b"png"


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "C:/evil.txt", "a/../../evil.txt",
                                  "..\\evil.txt", "CON.blend", "aux/x.txt", "bad:name.txt"])
def test_zip_members_that_could_escape_are_refused(tmp_path, name):
    archive = tmp_path / "scene.zip"
    archive.write_bytes(make_zip({"scene.blend": b"B", name: b"evil"}))
    with pytest.raises(AssetError):
        unpack_zip(archive, tmp_path / "job", "scene.blend")
    assert not (tmp_path / "job").exists()
    assert not list(tmp_path.glob("**/evil.txt"))


def test_zip_symlinks_are_refused(tmp_path):
    archive = tmp_path / "scene.zip"
    archive.write_bytes(make_zip({"scene.blend": b"B"}, links={"tex": "/etc"}))
    with pytest.raises(AssetError, match="symbolic link"):
        unpack_zip(archive, tmp_path / "job", "scene.blend")


def test_zip_bomb_is_refused(tmp_path):
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(make_zip({"scene.blend": b"B", "zeros.bin": b"\0" * (50 * 1024**2)}))
    with pytest.raises(AssetError, match="compressed more than"):
        unpack_zip(archive, tmp_path / "job", "scene.blend")
    assert not (tmp_path / "job").exists()


def test_zip_without_the_named_blend(tmp_path):
    archive = tmp_path / "scene.zip"
    archive.write_bytes(make_zip({"other.blend": b"B"}))
    with pytest.raises(AssetError) as caught:
        unpack_zip(archive, tmp_path / "job", "scene.blend")
    assert caught.value.field == "scene.blend"
    assert "'scene.blend' is not in the zip; the .blend files in it: 'other.blend'" in str(caught.value)


def test_not_a_zip(tmp_path):
    archive = tmp_path / "scene.zip"
    archive.write_bytes(b"not a zip at all")
    with pytest.raises(AssetError, match="not a valid zip"):
        unpack_zip(archive, tmp_path / "job", "scene.blend")


def test_a_blend_sent_as_a_zip_is_named_for_what_it_is(tmp_path):
    from worker_app.demo import sample_scene
    with pytest.raises(AssetError) as caught:
        unpack_zip(sample_scene(), tmp_path / "job", "scene.blend")
    assert caught.value.field == "scene.type" and 'send it with "type": "blend"' in str(caught.value)


def test_cache_evicts_least_recently_used_but_never_the_scene_in_use(tmp_path):
    import os
    cache = SceneCache(tmp_path / "cache", max_bytes=250)
    blobs = [bytes([i]) * 100 for i in range(3)]
    paths = []
    for i, data in enumerate(blobs):
        path, _ = cache.fetch(asset_for(data), downloader(data, []))
        os.utime(path, (1000 + i, 1000 + i))
        paths.append(path)
    assert not paths[0].exists() and paths[1].exists() and paths[2].exists()
    cache.fetch(asset_for(blobs[1]), downloader(blobs[1], []))  # used again: now the newest
    big = b"x" * 240
    newest, _ = cache.fetch(asset_for(big), downloader(big, []))
    assert newest.exists() and not paths[2].exists()


def test_zip_members_that_differ_only_in_case_are_refused(tmp_path):
    archive = tmp_path / "scene.zip"
    archive.write_bytes(make_zip({"scene.blend": b"BLENDER-v304", "tex/Wood.png": b"1", "tex/wood.png": b"2"}))
    with pytest.raises(AssetError, match="'tex/Wood.png' and 'tex/wood.png' differ only in case"):
        unpack_zip(archive, tmp_path / "job" / "scene", "scene.blend")
    assert not (tmp_path / "job").exists()


def test_zip_members_with_paths_too_long_for_windows_are_refused(tmp_path):
    archive = tmp_path / "scene.zip"
    deep = "/".join(["folder"] * 30) + "/a.png"
    archive.write_bytes(make_zip({"scene.blend": b"BLENDER-v304", deep: b"1"}))
    with pytest.raises(AssetError, match="more than 150; Windows cannot unpack it"):
        unpack_zip(archive, tmp_path / "job" / "scene", "scene.blend")


def test_a_download_an_antivirus_holds_open_for_a_moment_is_still_cached(tmp_path, monkeypatch):
    # Windows: an antivirus scanning the new file makes os.replace fail with "access denied" (WinError 5) for
    # a moment; the cache tries again, as every other replace in homefarm does (system/files.py).
    import os
    real_replace, refusals = os.replace, []

    def held_replace(src, dst):
        if len(refusals) < 3:
            refusals.append(dst)
            raise PermissionError(13, "Access is denied")
        real_replace(src, dst)

    monkeypatch.setattr("worker_app.render.assets.os.replace", held_replace)
    cache, data = SceneCache(tmp_path / "cache"), b"blend bytes" * 100
    path, hit = cache.fetch(asset_for(data), downloader(data, []))
    assert path.read_bytes() == data and len(refusals) == 3
    # Eviction of a scene held open leaves it for next time instead of failing the job.
    cache.max_bytes = 0
    monkeypatch.setattr("pathlib.Path.unlink", lambda self, missing_ok=False: (_ for _ in ()).throw(
        PermissionError(13, "Access is denied")))
    monkeypatch.setattr("worker_app.system.files.FIRST_DELAY", 0.0)
    assert cache.evict() == [] and path.exists()

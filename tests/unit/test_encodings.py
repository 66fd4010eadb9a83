"""Every text file homefarm reads or writes names its encoding. Without one Python uses the locale's: on
Windows a code page, so the first config showed "Â°C" and a non-ASCII path in a job file broke."""

import ast
from pathlib import Path
from support.harness import ROOT

SOURCES = [*(ROOT / "worker_app").rglob("*.py"), *(ROOT / "blender_scripts").glob("*.py"),
           *(ROOT / "installer").glob("*.py"), *(ROOT / "bench").glob("*.py")]


def _binary(call: ast.Call, mode_index: int) -> bool:
    mode = next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None and len(call.args) > mode_index:
        mode = call.args[mode_index]
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and "b" in mode.value


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def text_io_without_encoding(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, ast.Call) or any(k.arg == "encoding" for k in node.keywords):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("read_text", "write_text"):
            found.append(f"{_name(path)}:{node.lineno} .{func.attr}()")
        elif isinstance(func, ast.Name) and func.id == "open" and not _binary(node, 1):
            found.append(f"{_name(path)}:{node.lineno} open()")
        elif isinstance(func, ast.Attribute) and func.attr == "open" and not node.args and not node.keywords:
            continue  # provider.open(), counters.open(): no file
        elif isinstance(func, ast.Attribute) and func.attr == "open" and isinstance(func.value, ast.Name) \
                and func.value.id in ("io", "codecs") and not _binary(node, 1):
            found.append(f"{_name(path)}:{node.lineno} {func.value.id}.open()")
    return found


def test_every_text_file_is_read_and_written_with_an_explicit_encoding():
    missing = [hit for path in SOURCES for hit in text_io_without_encoding(path)]
    assert missing == [], "name the encoding (utf-8):\n" + "\n".join(missing)


def test_the_check_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from pathlib import Path\nPath('a').read_text()\nopen('b')\nopen('c', 'rb')\n"
                      "Path('d').write_text('x', encoding='utf-8')\n", encoding="utf-8")
    hits = text_io_without_encoding(sample)
    assert [h.split(" ", 1)[1] for h in hits] == [".read_text()", "open()"]

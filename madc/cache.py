"""The compilation cache: emitted packages stored by content hash.

A package lives in `<cache dir>/<spec name>-<key>/<spec name>/`, where the key hashes the spec
source and path, the compile options, the madc version and the code generators' own text (so
editing a template invalidates old entries). The cache dir is `$MADC_CACHE_DIR`, else
`~/.cache/madc`.

Writes are atomic: a package is written into a fresh temporary folder inside the cache dir,
then renamed onto its final name in one `os.rename`. If another process got there first the
rename fails, the temporary folder is removed and the existing entry (complete, since it also
arrived by rename) is used. So two processes compiling the same spec at once both succeed and
the cache never holds a half-written package.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

#: Files whose text feeds the cache key: the generators and templates.
_GENERATOR_GLOBS = (("madc/codegen", "*.py"), ("codegen", "*.j2"))


def cache_dir() -> Path:
    """The cache root: `$MADC_CACHE_DIR` or `~/.cache/madc` (created on demand)."""
    root = os.environ.get("MADC_CACHE_DIR")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "madc"
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.lru_cache(maxsize=1)
def generator_fingerprint() -> str:
    """sha256 over the code generators and templates that produce a package."""
    import madc
    from madc.codegen import templates

    digest = hashlib.sha256()
    roots = {"madc/codegen": Path(madc.__file__).parent / "codegen"}
    template_dir = Path(templates.__file__).resolve().parents[2] / "codegen"
    try:
        from importlib.resources import files

        template_dir = Path(str(files("madc.templates")))
    except (ModuleNotFoundError, TypeError):
        pass
    roots["codegen"] = template_dir
    for key, pattern in _GENERATOR_GLOBS:
        for file in sorted(roots[key].glob(pattern)):
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def cache_key(source: str, path: str, options: dict) -> str:
    """The content hash of one compilation (hex sha256)."""
    from madc.codegen.package import madc_version

    payload = json.dumps({"source": source, "path": path, "options": options,
                          "version": madc_version(), "generators": generator_fingerprint()},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def store(name: str, key: str, files: dict) -> Path:
    """The cached package folder for (name, key), writing `files` there atomically if it is
    not cached yet. Returns the package folder (`.../<name>-<key>/<name>`)."""
    root = cache_dir()
    entry = root / f"{name}-{key[:24]}"
    package = entry / name
    if package.is_dir():
        return package
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    try:
        (tmp / name).mkdir()
        for file_name, text in files.items():
            (tmp / name / file_name).write_text(text, encoding="utf-8")
        try:
            os.rename(tmp, entry)
        except OSError:
            # Another process renamed its complete copy first: keep that one.
            if not package.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return package


def lookup(name: str, key: str) -> Path | None:
    """The cached package folder for (name, key), or None."""
    package = cache_dir() / f"{name}-{key[:24]}" / name
    return package if package.is_dir() else None

"""Builds dist/oss-cdn-prewarm.zip, the code package both FC functions run from.

    python -m function_zip [--out PATH] [--python 3.10|3.12] [--with dynamodb] [--bytecode]

The zip holds the `handler` package (without handler/local, the local doubles) and the
runtime dependencies from pyproject.toml, installed as wheels for the FC runtime's
platform (manylinux2014_x86_64, CPython of the chosen version), not for this machine.
Run it with the project installed (python3 dev.py package does), so that the pins are
read from the installed metadata: pyproject.toml stays the one place they are written.

FC's code folder is read-only, so Python cannot cache bytecode there and compiles every module
it imports on every cold start. `--bytecode` ships that bytecode instead, compiled by the
runtime's Python version as unchecked-hash .pyc files.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.metadata import requires
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "dist" / "oss-cdn-prewarm.zip"
PROJECT = "oss-cdn-prewarm"
PLATFORM = "manylinux2014_x86_64"
RUNTIME_EXTRAS = ("fc", "tablestore")  # flush-on-full (fc2) and the production store
OPTIONAL_EXTRAS = ("dynamodb",)
NOT_DEPLOYED = ("handler/local/",)  # the CDN API double, the demo, the DynamoDB emulator runner
# Installed as a dependency but never imported: tablestore requires numpy, yet reaches it only
# through flatbuffers' optional import for time-series tables. Leaving it out makes the zip
# several times smaller and spares every Tablestore cold start importing it.
NEVER_IMPORTED = ("numpy",)
SKIPPED_SUFFIXES = (".pyc", ".pyo")
_EXTRA_MARKER = re.compile(r"""^extra\s*==\s*["']([\w.-]+)["']$""")


def runtime_requirements(extras: tuple[str, ...]) -> list[str]:
    """The project's dependencies plus those of `extras`, as pyproject.toml pins them."""
    chosen = set()
    for line in requires(PROJECT) or []:
        requirement, _, marker = (part.strip() for part in line.partition(";"))
        if not marker:
            chosen.add(requirement)
            continue
        extra = _EXTRA_MARKER.match(marker)
        if extra is None:
            raise SystemExit(f"function_zip: cannot read the marker of {line!r} in {PROJECT}'s metadata")
        if extra.group(1) in extras:
            chosen.add(requirement)
    return sorted(chosen)


def runtime_python(python_version: str, explicit: str | None = None) -> str:
    """An interpreter of the FC runtime's Python version: `explicit`, this one, or one found on the machine.

    pip evaluates dependencies' environment markers (`async-timeout; python_version < "3.11"`,
    needed by aiohttp, which tablestore imports) with the Python it runs under, whatever
    --python-version says (pypa/pip#11010, #13296). So the install runs under the runtime's version.
    """
    if explicit is None and f"{sys.version_info.major}.{sys.version_info.minor}" == python_version:
        return sys.executable
    for candidate in [explicit] if explicit else _installed_pythons(python_version):
        if _version_of(candidate) == python_version:
            return candidate
    raise SystemExit(
        f"function_zip: needs a Python {python_version} interpreter (python{python_version} on PATH, "
        f"or --runtime-python PATH) to resolve the dependencies as that runtime sees them"
    )


def _installed_pythons(version: str) -> list[str]:
    """pythonX.Y on PATH, then the ones pyenv and uv keep (a pyenv shim fails unless its version is active)."""
    found = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found += sorted(str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    found += sorted(str(p) for p in (Path.home() / ".local/share/uv/python").glob(f"cpython-{version}.*/bin/python{version}"))
    return [candidate for candidate in found if candidate]


def _version_of(python: str) -> str | None:
    try:
        result = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def install_wheels(requirements: list[str], target: Path, python: str, python_version: str, cache: Path) -> None:
    """pip-install `requirements` into `target` as wheels for the FC runtime (pure-Python sdists built here)."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--cache-dir", str(cache)]
    wheelhouse = cache / "wheelhouse"
    # Some SDKs (aliyun-fc2) publish only an sdist; a pure-Python one builds to a py3-none-any
    # wheel that fits every platform. Binary wheels built here would not match the target tag,
    # so pip takes those from the index below instead.
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheelhouse), *requirements], check=True)
    subprocess.run(
        [*pip, "--python", python, "install", "--quiet", "--no-compile", "--root-user-action=ignore", "--target", str(target),
         "--find-links", str(wheelhouse), "--only-binary=:all:", "--platform", PLATFORM,
         "--python-version", python_version, "--implementation", "cp", *requirements],
        check=True,
    )


def drop_distributions(staging: Path, names: tuple[str, ...]) -> None:
    """Remove installed distributions (their packages, bundled libraries and metadata) from `staging`."""
    for name in names:
        for path in [staging / name, staging / f"{name}.libs", *staging.glob(f"{name}-*.dist-info")]:
            if path.is_dir():
                shutil.rmtree(path)


def stage_handler(staging: Path) -> None:
    """Copy the deployed part of the handler package into `staging`."""
    for path in sorted((ROOT / "handler").rglob("*")):
        name = path.relative_to(ROOT).as_posix()
        if path.is_file() and not _skipped(name):
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, staging / name)


def compile_bytecode(staging: Path, python: str) -> str:
    """Compile every module in `staging` with the runtime's Python; the bytecode tag it wrote."""
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(staging)],
        check=True, stdout=subprocess.DEVNULL,
    )
    return subprocess.run([python, "-c", "import sys; print(sys.implementation.cache_tag)"],
                          check=True, capture_output=True, text=True).stdout.strip()


def zip_entries(staging: Path, bytecode_tag: str | None = None) -> list[tuple[Path, str]]:
    """(file, name in the zip) for everything staged, without what never runs on FC."""
    entries = []
    for path in staging.rglob("*"):
        name = path.relative_to(staging).as_posix()
        if path.is_file() and not (_skipped(name) and not _is_bytecode_of(name, bytecode_tag)):
            entries.append((path, name))
    return sorted(entries, key=lambda entry: entry[1])


def _is_bytecode_of(name: str, tag: str | None) -> bool:
    parts = name.split("/")
    return (
        tag is not None
        and len(parts) > 1 and parts[-2] == "__pycache__"
        and parts[-1].endswith(f".{tag}.pyc")
        and not name.startswith(NOT_DEPLOYED) and "tests" not in parts[1:-2] and parts[0] != "bin"
    )


def _skipped(name: str) -> bool:
    parts = name.split("/")
    return (
        name.startswith(NOT_DEPLOYED)
        or name.endswith(SKIPPED_SUFFIXES)
        or "__pycache__" in parts
        or "tests" in parts[1:-1]  # the dependencies' own test suites
        or parts[0] == "bin"  # console scripts pip installs next to the packages
    )


def build(
    out: Path, python_version: str, extras: tuple[str, ...], cache: Path, *,
    bytecode: bool = False, python: str | None = None,
) -> list[str]:
    """Write the zip to `out`; the names in it."""
    requirements = runtime_requirements(RUNTIME_EXTRAS + extras)
    python = runtime_python(python_version, python)
    with tempfile.TemporaryDirectory(prefix="function-zip-") as tmp:
        staging = Path(tmp) / "code"
        install_wheels(requirements, staging, python, python_version, cache)
        drop_distributions(staging, NEVER_IMPORTED)
        stage_handler(staging)
        tag = compile_bytecode(staging, python) if bytecode else None
        entries = zip_entries(staging, tag)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".zip.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path, name in entries:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
        partial.replace(out)
    names = [name for _, name in entries]
    print_summary(out, requirements, python_version, names, tag)
    return names


def print_summary(out: Path, requirements: list[str], python_version: str, names: list[str], tag: str | None) -> None:
    tops: dict[str, int] = {}
    for name in names:
        top = name.split("/")[0]
        tops[top] = tops.get(top, 0) + 1
    with zipfile.ZipFile(out) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    print(f"{_relative(out)}: {out.stat().st_size / 1e6:.1f} MB ({unpacked / 1e6:.1f} MB unpacked), "
          f"{len(names)} files, for CPython {python_version} on {PLATFORM}"
          + (f", with {tag} bytecode" if tag else ""))
    print(f"requirements: {', '.join(requirements)}; left out, never imported: {', '.join(NEVER_IMPORTED)}")
    for top, count in sorted(tops.items()):
        print(f"  {top:<48} {count:>5} files")


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 dev.py package", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DIST, help=f"the zip to write (default: {_relative(DIST)})")
    parser.add_argument("--python", default="3.10", metavar="X.Y", help="the FC runtime's Python (python3.10 by default)")
    parser.add_argument("--with", dest="extras", action="append", default=[], choices=OPTIONAL_EXTRAS,
                        help="add an optional store SDK (dynamodb: boto3)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("PIP_CACHE_DIR") or ROOT / ".venv" / "pip-cache"),
                        help="pip's download cache and built wheels (default: .venv/pip-cache)")
    parser.add_argument("--bytecode", action="store_true",
                        help="ship .pyc files compiled by pythonX.Y (FC cannot cache bytecode in its read-only code folder)")
    parser.add_argument("--runtime-python", metavar="PATH",
                        help="an interpreter of the --python version (default: this one if it matches, else pythonX.Y on PATH)")
    args = parser.parse_args(argv)
    build(args.out, args.python, tuple(args.extras), args.cache.resolve(), bytecode=args.bytecode,
          python=args.runtime_python)
    return 0


if __name__ == "__main__":
    sys.exit(main())

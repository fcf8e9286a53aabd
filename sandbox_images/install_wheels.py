"""Install wheel files by unpacking them into one directory (standard library only).

Runs at image build time with the image's own python3. Debian's python3 has no
pip, and the sandbox needs neither pip nor an index: a wheel is a zip whose
root is meant to land in site-packages, and whose ``<name>.data/purelib`` and
``<name>.data/platlib`` folders belong there too (the wheel format, PEP 427).
Scripts, headers and data files are dropped: nothing in the sandbox runs them.

    python3 install_wheels.py TARGET_DIR WHEEL...
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile


def install(wheel: str, target: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename
            if name.endswith("/") or ".." in name.split("/") or name.startswith("/"):
                continue
            parts = name.split("/")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue  # scripts, headers, data: not needed in the sandbox
                parts = parts[2:]
            dest = os.path.join(target, *parts)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(dest, (mode or 0o644) & 0o755 | 0o444)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    target, wheels = argv[0], argv[1:]
    os.makedirs(target, exist_ok=True)
    for wheel in sorted(wheels):
        install(wheel, target)
        print(f"installed {os.path.basename(wheel)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

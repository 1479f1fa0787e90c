"""Names that become path components go through ``safe_join``: never '.', '..', a separator or NUL.

An experiment name decides the folder of its MLflow artifacts and of its report; a name such as
``../../x`` must not write outside the output folder, whatever validated it before.
"""

from __future__ import annotations

import os
from pathlib import Path


def safe_join(root: str | Path, *names: str) -> Path:
    """``root / name / ...`` where each name is one plain path component; ``ValueError`` otherwise."""
    path = Path(root)
    for name in names:
        if (
            not name
            or set(name) == {"."}
            or "\0" in name
            or "/" in name
            or (os.altsep and os.altsep in name)
            or os.sep in name
        ):
            raise ValueError(f"{name!r} cannot be used as a folder name (no '.', '..', separators or NUL)")
        path = path / name
    return path

"""Dataset plugin base class and the per-video record every method receives."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.params import Param


@dataclass(frozen=True)
class VideoRecord:
    """One annotated video. ``labels`` holds one class index (single-label) or several (multi-label).

    ``relevance`` is per-frame ground truth (1 = the frame shows task-relevant content), known only
    for the built-in benchmark; ``segments`` are annotated (start_s, end_s, class) intervals.
    """

    video_id: str
    path: str
    labels: tuple[int, ...]
    num_frames: int | None = None
    fps: float | None = None
    relevance: tuple[int, ...] | None = None
    segments: tuple[tuple[float, float, int], ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class DatasetError(ValueError):
    """A dataset that cannot be read as configured (missing or empty root, missing annotation file, a
    parameter outside its declaration): its message is one line naming the parameter or file."""


class VideoDataset:
    """Base class of dataset plugins: built as ``Cls(**params)``, then asked for splits."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    multilabel: ClassVar[bool] = False

    def __init__(self, **params: Any):
        self.p = params

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_names(self) -> list[str]:
        raise NotImplementedError

    def split(self, name: str) -> list[VideoRecord]:
        """Records of split ``name`` ("train", "val" or "test")."""
        raise NotImplementedError

    def annotation_files(self) -> list[str]:
        """Files whose content defines the dataset (hashed into the manifest)."""
        raise NotImplementedError

    def split_names(self) -> tuple[str, ...]:
        """The splits this dataset provides (``data check`` scans them, the manifest lists their videos)."""
        return ("train", "test")

    def video_paths(self) -> list[str]:
        """Every video file the splits refer to (present or not), sorted; hashed into the manifest."""
        paths: set[str] = set()
        for name in self.split_names():
            paths.update(record.path for record in self.split(name))
        return sorted(paths)

    @property
    def root_dir(self) -> str | None:
        """Folder that video paths are made relative to in the manifest (so copies elsewhere hash the same)."""
        root = self.p.get("root") if isinstance(self.p, dict) else None
        return str(root) if root else None

    def manifest_hash(self) -> str:
        """Hash of annotation files + video file list with sizes (see harness.data.manifest)."""
        from harness.data.manifest import manifest_hash

        return manifest_hash(self)

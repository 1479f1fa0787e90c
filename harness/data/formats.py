"""Datasets in their official formats, registered by name. Users point ``root`` (and, where their
copy differs, the annotation and video paths, relative to ``root``) at their own copy; nothing is
downloaded. Formats, layouts and split conventions are documented in docs/data.md.

Split names are always ``train`` / ``val`` / ``test``. Where the official test labels are withheld
(Kinetics, Something-Something V2, ActivityNet) ``test`` is the official validation set, as in the
seed papers. A video listed by the annotations but absent on disk keeps its expected path, so that
the frame bank and ``data check`` report it as missing instead of it silently vanishing.
"""
from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Iterable

from harness.data.dataset import DatasetError, VideoDataset, VideoRecord
from harness.params import Param
from harness.registry import register_dataset

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")


def index_videos(folder: Path, extensions: Iterable[str] = VIDEO_EXTENSIONS) -> dict[str, Path]:
    """Map each video file's stem to its path, walking ``folder`` once (layouts nest by class or not)."""
    found: dict[str, Path] = {}
    exts = tuple(extensions)
    if folder.is_dir():
        for dirpath, _, files in os.walk(folder):
            for name in files:
                if name.lower().endswith(exts):
                    found.setdefault(os.path.splitext(name)[0], Path(dirpath) / name)
    return found


class AnnotatedDataset(VideoDataset):
    """Shared plumbing: parameters checked against their declarations and defaults filled in,
    ``root``-relative paths, splits parsed once, a missing or empty root (or annotation file) and an
    empty split refused with a one-line ``DatasetError``. ``notes`` collects what the loader fixed
    in the annotations (``data check`` prints them)."""

    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    empty_splits_allowed: ClassVar[bool] = False  # an official split with no video means a wrong path or split

    def __init__(self, **params: Any):
        unknown = set(params) - set(self.params)
        if unknown:
            raise DatasetError(f"dataset '{self.name}': unknown parameter(s) {sorted(unknown)}; "
                               f"it has {sorted(self.params)}")
        for key, value in params.items():
            problem = self.params[key].check(value)
            if problem:
                raise DatasetError(f"dataset '{self.name}': parameter {key}: {problem}")
        super().__init__(**{k: params.get(k, p.default) for k, p in self.params.items()})
        self._records: dict[str, list[VideoRecord]] = {}
        self._classes: list[str] | None = None
        self.notes: list[str] = []

    @property
    def root(self) -> Path:
        return Path(str(self.p["root"])).expanduser()

    def file(self, key: str) -> Path:
        """The path of parameter ``key`` (relative to ``root`` unless absolute)."""
        value = Path(str(self.p[key])).expanduser()
        return value if value.is_absolute() else self.root / value

    def existing(self, key: str, name: str = "") -> Path:
        """``file(key)`` (or the file ``name`` inside that folder), which must exist; else a DatasetError
        naming ``key``."""
        path = self.file(key) / name if name else self.file(key)
        if not path.exists():
            kind = "file" if name or path.suffix else "path"
            raise DatasetError(f"dataset '{self.name}': parameter {key}: no such {kind} '{path}'")
        return path

    def _check_root(self) -> None:
        root = self.root
        if not root.is_dir():
            raise DatasetError(f"dataset '{self.name}': parameter root: no such folder '{root}'")
        if next(root.iterdir(), None) is None:
            raise DatasetError(f"dataset '{self.name}': parameter root: the folder '{root}' is empty")

    def split_names(self) -> tuple[str, ...]:
        return self.splits

    def split(self, name: str) -> list[VideoRecord]:
        if name not in self.split_names():
            raise KeyError(f"dataset '{self.name}' has splits {list(self.split_names())}, not '{name}'")
        if name not in self._records:
            self._check_root()
            records = self._load(name)
            if not records and not self.empty_splits_allowed:
                raise DatasetError(f"dataset '{self.name}': split '{name}' has no videos under '{self.root}' "
                                   f"(parameters: {', '.join(f'{k}={v}' for k, v in sorted(self.p.items()))})")
            self._records[name] = records
        return self._records[name]

    @property
    def class_names(self) -> list[str]:
        if self._classes is None:
            self._classes = self._load_classes()
        return self._classes

    def _load(self, split: str) -> list[VideoRecord]:
        raise NotImplementedError

    def _load_classes(self) -> list[str]:
        raise NotImplementedError


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------
# Kinetics-400 / 600
# ------------------------------------------------------------------------------------------------
class _Kinetics(AnnotatedDataset):
    """CSV ``label,youtube_id,time_start,time_end,split[,is_cc]``; files ``<ytid>_<start:06d>_<end:06d>.<ext>``
    anywhere under the split's folder (flat or one folder per label)."""

    splits = ("train", "val", "test")
    _csv = {"train": "train_csv", "val": "val_csv", "test": "val_csv"}
    _dir = {"train": "train_dir", "val": "val_dir", "test": "val_dir"}

    def _rows(self, split: str) -> list[dict[str, str]]:
        with open(self.existing(self._csv[split]), newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def _load_classes(self) -> list[str]:
        return sorted({row["label"] for row in self._rows("train")})

    def _load(self, split: str) -> list[VideoRecord]:
        folder = self.file(self._dir[split])
        videos = index_videos(folder)
        index = {name: i for i, name in enumerate(self.class_names)}
        records = []
        for row in self._rows(split):
            stem = f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}"
            path = videos.get(stem, folder / row["label"] / f"{stem}.mp4")
            records.append(VideoRecord(stem, str(path), (index[row["label"]],), meta={"youtube_id": row["youtube_id"]}))
        return records

    def annotation_files(self) -> list[str]:
        return [str(self.file("train_csv")), str(self.file("val_csv"))]


_KINETICS_PARAMS = {
    "train_csv": Param("annotations/train.csv", "training CSV (official release file)"),
    "val_csv": Param("annotations/validate.csv", "validation CSV; also the 'test' split (test labels are withheld)"),
    "train_dir": Param("train", "folder of training videos (flat or per label)"),
    "val_dir": Param("val", "folder of validation videos (flat or per label)"),
}


@register_dataset("kinetics400")
class Kinetics400(_Kinetics):
    summary = "Kinetics-400 (official CSVs; 'test' = validation set)"
    params = {"root": Param("data/kinetics400", "dataset folder"), **_KINETICS_PARAMS}


@register_dataset("kinetics600")
class Kinetics600(_Kinetics):
    summary = "Kinetics-600 (official CSVs; 'test' = validation set)"
    params = {"root": Param("data/kinetics600", "dataset folder"), **_KINETICS_PARAMS}


# ------------------------------------------------------------------------------------------------
# Something-Something V2
# ------------------------------------------------------------------------------------------------
@register_dataset("ssv2")
class SomethingSomethingV2(AnnotatedDataset):
    """``something-something-v2-{train,validation}.json`` lists ``{"id","label","template","placeholders"}``;
    the class is ``labels.json[template without brackets]``; videos ``<id>.webm``."""

    summary = "Something-Something V2 (official JSONs; 'test' = validation set)"
    splits = ("train", "val", "test")
    params = {
        "root": Param("data/ssv2", "dataset folder"),
        "videos_dir": Param("20bn-something-something-v2", "folder of <id>.webm videos"),
        "labels_json": Param("something-something-v2-labels.json", "template -> class index (a string)"),
        "train_json": Param("something-something-v2-train.json", "training annotations"),
        "val_json": Param("something-something-v2-validation.json", "validation annotations (also 'test')"),
        "ext": Param(".webm", "video file extension"),
    }

    def _load_classes(self) -> list[str]:
        mapping = json.loads(self.existing("labels_json").read_text(encoding="utf-8"))
        names = [""] * len(mapping)
        for template, index in mapping.items():
            names[int(index)] = template
        return names

    def _load(self, split: str) -> list[VideoRecord]:
        annotations = self.existing("train_json" if split == "train" else "val_json")
        entries = json.loads(annotations.read_text(encoding="utf-8"))
        index = {name: i for i, name in enumerate(self.class_names)}
        folder = self.file("videos_dir")
        records = []
        for entry in entries:
            template = entry["template"].replace("[", "").replace("]", "")
            records.append(VideoRecord(str(entry["id"]), str(folder / f"{entry['id']}{self.p['ext']}"), (index[template],),
                                       meta={"label_text": entry.get("label", "")}))
        return records

    def annotation_files(self) -> list[str]:
        return [str(self.file(k)) for k in ("labels_json", "train_json", "val_json")]


# ------------------------------------------------------------------------------------------------
# UCF101 and HMDB51
# ------------------------------------------------------------------------------------------------
@register_dataset("ucf101")
class UCF101(AnnotatedDataset):
    """``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0N.txt`` (``Class/v_..avi 1``), ``testlist0N.txt``
    (path only; the class is the folder). Class folders match ``classInd`` case-insensitively, as the
    official release spells HandstandPushups two ways."""

    summary = "UCF101 (official split lists 1-3)"
    params = {
        "root": Param("data/ucf101", "dataset folder"),
        "videos_dir": Param("UCF-101", "folder of <Class>/<video>.avi"),
        "splits_dir": Param("ucfTrainTestlist", "folder of classInd.txt, trainlist0N.txt, testlist0N.txt"),
        "split": Param(1, "official split", choices=(1, 2, 3)),
    }

    def _list_file(self, split: str) -> Path:
        return self.file("splits_dir") / f"{'trainlist' if split == 'train' else 'testlist'}{self.p['split']:02d}.txt"

    def _load_classes(self) -> list[str]:
        rows = [line.split() for line in _read_lines(self.existing("splits_dir", "classInd.txt"))]
        return [name for _, name in sorted((int(i), name) for i, name in rows)]

    def _load(self, split: str) -> list[VideoRecord]:
        index = {name.lower(): i for i, name in enumerate(self.class_names)}
        folder = self.file("videos_dir")
        records = []
        for line in _read_lines(self.existing("splits_dir", self._list_file(split).name)):
            rel = line.split()[0]
            label = index[rel.split("/")[0].lower()]
            records.append(VideoRecord(Path(rel).stem, str(folder / rel), (label,)))
        return records

    def annotation_files(self) -> list[str]:
        return [str(self.file("splits_dir") / "classInd.txt")] + [str(self._list_file(s)) for s in self.splits]


@register_dataset("hmdb51")
class HMDB51(AnnotatedDataset):
    """Per class ``<class>_test_split<N>.txt`` with lines ``<video>.avi <0|1|2>`` (1 train, 2 test, 0 unused)."""

    summary = "HMDB51 (official split files 1-3)"
    params = {
        "root": Param("data/hmdb51", "dataset folder"),
        "videos_dir": Param("videos", "folder of <class>/<video>.avi"),
        "splits_dir": Param("testTrainMulti_7030_splits", "folder of <class>_test_split<N>.txt"),
        "split": Param(1, "official split", choices=(1, 2, 3)),
    }

    def _split_files(self) -> list[Path]:
        files = sorted(self.existing("splits_dir").glob(f"*_test_split{self.p['split']}.txt"))
        if not files:
            raise DatasetError(f"dataset '{self.name}': parameter splits_dir: "
                               f"no <class>_test_split{self.p['split']}.txt in '{self.file('splits_dir')}'")
        return files

    def _load_classes(self) -> list[str]:
        suffix = f"_test_split{self.p['split']}"
        return sorted(f.stem[: -len(suffix)] for f in self._split_files())

    def _load(self, split: str) -> list[VideoRecord]:
        wanted = "1" if split == "train" else "2"
        folder = self.file("videos_dir")
        records = []
        for label, name in enumerate(self.class_names):
            for line in _read_lines(self.file("splits_dir") / f"{name}_test_split{self.p['split']}.txt"):
                video, flag = line.split()[:2]
                if flag == wanted:
                    records.append(VideoRecord(Path(video).stem, str(folder / name / video), (label,)))
        return records

    def annotation_files(self) -> list[str]:
        return [str(f) for f in self._split_files()]


# ------------------------------------------------------------------------------------------------
# Charades (multi-label)
# ------------------------------------------------------------------------------------------------
@register_dataset("charades")
class Charades(AnnotatedDataset):
    """``Charades_v1_{train,test}.csv`` (column ``actions``: ``c092 11.90 21.20;c147 0.00 12.60``),
    ``Charades_v1_classes.txt`` (``c000 Holding some clothes``); 157 classes, multi-label."""

    summary = "Charades (multi-label, 157 classes, evaluated with mAP)"
    multilabel = True
    params = {
        "root": Param("data/charades", "dataset folder"),
        "videos_dir": Param("Charades_v1_480", "folder of <id>.mp4"),
        "train_csv": Param("Charades_v1_train.csv", "training annotations"),
        "test_csv": Param("Charades_v1_test.csv", "test annotations"),
        "classes_file": Param("Charades_v1_classes.txt", "class list"),
        "ext": Param(".mp4", "video file extension"),
    }

    def _load_classes(self) -> list[str]:
        return [line.split(" ", 1)[1] for line in _read_lines(self.existing("classes_file"))]

    def _load(self, split: str) -> list[VideoRecord]:
        folder = self.file("videos_dir")
        records = []
        path = self.existing("train_csv" if split == "train" else "test_csv")
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                segments = []
                for action in filter(None, (row.get("actions") or "").split(";")):
                    code, start, end = action.split()
                    if float(start) > float(end):  # 7 in the official train CSV: the times in the wrong order
                        self.notes.append(f"{path.name}:{reader.line_num}: video {row['id']}: segment '{action}' "
                                          "has its start after its end; start and end swapped")
                        start, end = end, start
                    segments.append((float(start), float(end), int(code[1:])))
                labels = tuple(sorted({s[2] for s in segments}))
                records.append(VideoRecord(row["id"], str(folder / f"{row['id']}{self.p['ext']}"), labels,
                                           segments=tuple(segments), meta={"scene": row.get("scene", "")}))
        return records

    def annotation_files(self) -> list[str]:
        return [str(self.file(k)) for k in ("classes_file", "train_csv", "test_csv")]


# ------------------------------------------------------------------------------------------------
# Breakfast
# ------------------------------------------------------------------------------------------------
BREAKFAST_ACTIVITIES = ("cereals", "coffee", "friedegg", "juice", "milk", "pancake", "salat", "sandwich", "scrambledegg", "tea")
BREAKFAST_TEST_PERSONS = {"s1": range(3, 16), "s2": range(16, 29), "s3": range(29, 42), "s4": range(42, 55)}


@register_dataset("breakfast")
class Breakfast(AnnotatedDataset):
    """Files ``P03/cam01/P03_cereals.avi``: the activity is in the file name; split sN holds out a
    block of 13 persons (s1: P03-P15, s2: P16-P28, s3: P29-P41, s4: P42-P54) for testing.

    Every camera view of a recording is its own video, as in the official split bundles
    (``P03_cam01_P03_cereals``, ``P03_webcam01_P03_cereals``, ...): videos are keyed by their path,
    never by their file name alone. The stereo camera's folder ``stereo`` holds one file per channel
    (``P03_cereals_ch0.avi``, ``_ch1.avi``), where the bundles list one video ``P03_stereo01_P03_cereals``:
    it is read from channel ``stereo_channel``, or from the other one when that file is absent.

    With ``bundles_dir`` (the official ``train.splitN.bundle`` / ``test.splitN.bundle``, one video id
    per line, with or without ``.txt``), a split holds exactly the videos its bundle lists, in its
    order; a listed video absent on disk keeps its expected path (reported missing); files that no
    bundle lists are left out. Without it, every video found is split by person.
    """

    summary = "Breakfast (10 activities, splits s1-s4 by person, every camera view a video)"
    params = {
        "root": Param("data/breakfast", "dataset folder"),
        "videos_dir": Param("BreakfastII_15fps_qvga_sync", "folder of P<nn>/<camera>/P<nn>_<activity>.avi"),
        "split": Param("s1", "which block of persons is held out for testing", choices=tuple(BREAKFAST_TEST_PERSONS)),
        "stereo_channel": Param(0, "stereo camera channel read as the stereo01 view (the other if it is absent)",
                                choices=(0, 1)),
        "bundles_dir": Param(None, "folder of the official split bundles (train.splitN.bundle, test.splitN.bundle); "
                             "null: every video found, split by person", type=str, nullable=True),
    }
    _pattern = re.compile(r"^(P(\d+))_([a-z]+?)(?:_ch([01]))?$")

    def _load_classes(self) -> list[str]:
        return list(BREAKFAST_ACTIVITIES)

    def _all(self) -> list[tuple[int, VideoRecord]]:
        folder = self.existing("videos_dir")
        views: dict[str, dict[str | None, Path]] = {}  # official video id -> {channel or None: file}
        for dirpath, _, files in os.walk(folder):
            for name in files:
                path = Path(dirpath) / name
                match = self._pattern.match(path.stem)
                if path.suffix.lower() not in (".avi", ".mp4") or not match:
                    continue
                if match.group(3) not in BREAKFAST_ACTIVITIES:
                    continue
                camera = path.parent.name if path.parent != folder else "nocamera"
                camera = "stereo01" if camera == "stereo" else camera  # the bundles' name of the stereo view
                video_id = f"{match.group(1)}_{camera}_{match.group(1)}_{match.group(3)}"
                views.setdefault(video_id, {})[match.group(4)] = path
        out = []
        preferred = str(self.p["stereo_channel"])
        for video_id, files in sorted(views.items()):
            channel = next(c for c in (None, preferred, "1" if preferred == "0" else "0") if c in files)
            person, camera, _, activity = video_id.split("_")
            label = (BREAKFAST_ACTIVITIES.index(activity),)
            out.append((int(person[1:]), VideoRecord(video_id, str(files[channel]), label,
                                                     meta={"camera": camera, "channel": channel})))
        return out

    def _load(self, split: str) -> list[VideoRecord]:
        if self.p["bundles_dir"]:
            return self._bundle(split)
        held_out = set(BREAKFAST_TEST_PERSONS[self.p["split"]])
        return [r for person, r in self._all() if (person in held_out) == (split == "test")]

    def _bundle_file(self, split: str) -> str:
        return f"{'train' if split == 'train' else 'test'}.split{self.p['split'][1:]}.bundle"

    def _bundle(self, split: str) -> list[VideoRecord]:
        """The videos an official bundle lists; one not on disk gets its expected path (reported missing)."""
        bundle = self.existing("bundles_dir", self._bundle_file(split))
        found = {record.video_id: record for _, record in self._all()}
        records = []
        for number, line in enumerate(bundle.read_text(encoding="utf-8").splitlines(), 1):
            video_id = line.strip().removesuffix(".txt")
            if not video_id or video_id.startswith("#"):
                continue
            parts = video_id.split("_")
            if len(parts) != 4 or parts[3] not in BREAKFAST_ACTIVITIES:
                raise DatasetError(f"{bundle}:{number}: '{line.strip()}' is not <person>_<camera>_<person>_<activity>")
            if video_id not in found:
                person, camera, _, activity = parts
                stereo = camera == "stereo01"
                name = f"{person}_{activity}" + (f"_ch{self.p['stereo_channel']}" if stereo else "") + ".avi"
                path = self.file("videos_dir") / person / ("stereo" if stereo else camera) / name
                found[video_id] = VideoRecord(video_id, str(path), (BREAKFAST_ACTIVITIES.index(activity),),
                                              meta={"camera": camera, "channel": None})
            records.append(found[video_id])
        return records

    def annotation_files(self) -> list[str]:
        if self.p["bundles_dir"]:
            return [str(self.file("bundles_dir") / self._bundle_file(s)) for s in self.splits]
        return []  # the file names are the annotations: the manifest's video list covers them


# ------------------------------------------------------------------------------------------------
# ActivityNet v1.3
# ------------------------------------------------------------------------------------------------
@register_dataset("activitynet")
class ActivityNet(AnnotatedDataset):
    """``activity_net.v1-3.min.json``: ``{"database": {id: {"subset", "duration", "annotations":
    [{"segment": [s, e], "label"}]}}, "taxonomy": [...]}``; 200 leaf classes; videos ``v_<id>.mp4``
    (or ``<id>.<ext>``). Untrimmed video-level labels: the classes of its annotated segments."""

    summary = "ActivityNet v1.3 (untrimmed, 200 classes; 'test' = validation set)"
    splits = ("train", "val", "test")
    _subset = {"train": "training", "val": "validation", "test": "validation"}
    params = {
        "root": Param("data/activitynet", "dataset folder"),
        "annotations": Param("activity_net.v1-3.min.json", "the official JSON"),
        "videos_dir": Param("videos", "folder of v_<id>.mp4 (flat or nested)"),
    }

    def _doc(self) -> dict[str, Any]:
        if not hasattr(self, "_doc_cache"):
            self._doc_cache = json.loads(self.existing("annotations").read_text(encoding="utf-8"))
        return self._doc_cache

    def _load_classes(self) -> list[str]:
        taxonomy = self._doc().get("taxonomy") or []
        parents = {node.get("parentName") for node in taxonomy}
        leaves = {node["nodeName"] for node in taxonomy if node["nodeName"] not in parents}
        used = {a["label"] for v in self._doc()["database"].values() for a in v.get("annotations", [])}
        return sorted(leaves or used)

    def _load(self, split: str) -> list[VideoRecord]:
        index = {name: i for i, name in enumerate(self.class_names)}
        folder = self.file("videos_dir")
        videos = index_videos(folder)
        records = []
        for vid, info in sorted(self._doc()["database"].items()):
            if info.get("subset") != self._subset[split]:
                continue
            segments = tuple((float(a["segment"][0]), float(a["segment"][1]), index[a["label"]]) for a in info.get("annotations", []))
            path = videos.get(f"v_{vid}") or videos.get(vid) or folder / f"v_{vid}.mp4"
            records.append(VideoRecord(vid, str(path), tuple(sorted({s[2] for s in segments})), segments=segments,
                                       meta={"duration": info.get("duration")}))
        return records

    def annotation_files(self) -> list[str]:
        return [str(self.file("annotations"))]


# ------------------------------------------------------------------------------------------------
# Generic CSV / JSON
# ------------------------------------------------------------------------------------------------
def _parse_relevance(value: Any) -> tuple[int, ...] | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        return tuple(int(c) for c in value.strip())
    return tuple(int(v) for v in value)


def _read_generic(path: Path) -> tuple[list[str] | None, list[dict[str, Any]]]:
    """(classes or None, entries) of one generic annotation file (.json or .csv)."""
    if path.suffix.lower() == ".json":
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, list):
            return None, doc
        return doc.get("classes"), doc["videos"]
    entries = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            entry: dict[str, Any] = {k: v for k, v in row.items() if v not in (None, "")}
            raw = entry.pop("labels", entry.pop("label", ""))
            entry["labels"] = [x.strip() for x in raw.split(";") if x.strip()]
            if "segments" in entry:  # "label start end;label start end"
                entry["segments"] = [[float(s), float(e), lab] for lab, s, e in (seg.split() for seg in entry["segments"].split(";") if seg.strip())]
            entries.append(entry)
    return None, entries


@register_dataset("generic")
class GenericDataset(AnnotatedDataset):
    """One annotation file per split, CSV or JSON, paths relative to ``root``.

    JSON: ``{"classes": [...], "videos": [{"path", "labels": [...], "id"?, "segments"?: [[start_s, end_s,
    label]], "relevance"?: "0011..."}]}`` (or just the list). CSV: columns ``path``, ``label`` or
    ``labels`` (several joined by ``;``), optional ``id``, ``segments`` (``label start end;...``) and
    ``relevance``. Labels are class names (or integer indices when no class list is given and every
    label is an integer). Other keys land in ``VideoRecord.meta``.
    """

    summary = "your own videos: CSV or JSON annotations (path, labels, optional segments and relevance)"
    empty_splits_allowed = True
    params = {
        "root": Param(".", "dataset folder; annotation and video paths are relative to it"),
        "train": Param("train.json", "training annotation file (.json or .csv)"),
        "test": Param("test.json", "test annotation file (.json or .csv)"),
        "val": Param(None, "optional validation annotation file", type=str, nullable=True),
        "classes": Param(None, "optional class list file (one name per line); default: from the annotations", type=str, nullable=True),
        "multilabel": Param(False, "several labels per video, evaluated with mAP"),
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.multilabel = bool(self.p["multilabel"])

    def split_names(self) -> tuple[str, ...]:
        return tuple(s for s in ("train", "val", "test") if self.p[s])

    def _entries(self, split: str) -> tuple[list[str] | None, list[dict[str, Any]]]:
        return _read_generic(self.existing(split))

    def _load_classes(self) -> list[str]:
        if self.p["classes"]:
            return _read_lines(self.existing("classes"))
        labels: set[Any] = set()
        for split in self.split_names():
            classes, entries = self._entries(split)
            if classes:
                return list(classes)
            for e in entries:
                labels.update(e.get("labels", [e["label"]] if "label" in e else []))
                labels.update(s[2] for s in e.get("segments", []))
        if labels and all(isinstance(x, int) or (isinstance(x, str) and x.isdigit()) for x in labels):
            return [str(i) for i in range(max(int(x) for x in labels) + 1)]
        return sorted(str(x) for x in labels)

    def _class_index(self, label: Any) -> int:
        if not hasattr(self, "_index"):
            self._index = {name: i for i, name in enumerate(self.class_names)}
        return self._index.get(str(label), -1)

    def _load(self, split: str) -> list[VideoRecord]:
        _, entries = self._entries(split)
        known = {"id", "path", "labels", "label", "segments", "relevance", "num_frames", "fps"}
        records = []
        for entry in entries:
            labels = entry.get("labels", [entry["label"]] if "label" in entry else [])
            missing = [lab for lab in labels if self._class_index(lab) < 0]
            if missing:
                raise ValueError(f"{self.file(split)}: video {entry['path']}: unknown label(s) {missing}")
            raw_segments = [(x["segment"][0], x["segment"][1], x["label"]) if isinstance(x, dict) else tuple(x)
                            for x in entry.get("segments", [])]
            # a segment label that is not a class (e.g. a primitive motion of skim-digits) gets -1;
            # the raw labels stay in meta["segment_labels"]
            segments = tuple((float(start), float(end), self._class_index(lab)) for start, end, lab in raw_segments)
            meta = {k: v for k, v in entry.items() if k not in known}
            if raw_segments:
                meta["segment_labels"] = [lab for _, _, lab in raw_segments]
            rel = entry["path"]
            num_frames, fps = entry.get("num_frames"), entry.get("fps")
            records.append(VideoRecord(
                str(entry.get("id") or Path(rel).with_suffix("").as_posix()), str(self.root / rel),
                tuple(sorted({self._class_index(lab) for lab in labels})),
                num_frames=int(num_frames) if num_frames not in (None, "") else None,
                fps=float(fps) if fps not in (None, "") else None,
                relevance=_parse_relevance(entry.get("relevance")), segments=segments, meta=meta))
        return records

    def annotation_files(self) -> list[str]:
        files = [str(self.file(s)) for s in self.split_names()]
        return files + ([str(self.file("classes"))] if self.p["classes"] else [])

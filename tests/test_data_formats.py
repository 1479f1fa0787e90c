"""Every registered format on a fixture written in its official layout (real video files)."""

import json
from pathlib import Path

import numpy as np
import pytest

from harness.data.commands import main as data_main
from harness.data.dataset import DatasetError
from harness.data.decoding import read_frames
from harness.data.encoding import write_video
from harness.registry import DATASETS

FRAMES = np.full((8, 32, 32, 3), 90, np.uint8)


def video(path: Path) -> None:
    write_video(path, FRAMES, fps=10)


def build(name, **params):
    return DATASETS.get(name)(**params)


def readable(record) -> bool:
    return read_frames(record.path, [0]).shape == (1, 32, 32, 3)


@pytest.mark.parametrize("name", ["kinetics400", "kinetics600"])
def test_kinetics(tmp_path, name):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations/train.csv").write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        'abseiling,---QUuC4vJs,84,94,train,0\n"air drumming",--nQbRBEz2s,104,114,train,0\n'
    )
    (tmp_path / "annotations/validate.csv").write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\nair drumming,-VtLx-mcPds,5,15,validate,0\n"
        "abseiling,0wR5jVB-WPk,417,427,validate,0\n"
    )
    video(tmp_path / "train/abseiling/---QUuC4vJs_000084_000094.mp4")
    video(tmp_path / "train/air drumming/--nQbRBEz2s_000104_000114.mp4")
    video(tmp_path / "val/-VtLx-mcPds_000005_000015.mp4")  # flat layout works too
    ds = build(name, root=str(tmp_path))
    assert ds.class_names == ["abseiling", "air drumming"]
    train, test = ds.split("train"), ds.split("test")
    assert [(r.video_id, r.labels) for r in train] == [
        ("---QUuC4vJs_000084_000094", (0,)),
        ("--nQbRBEz2s_000104_000114", (1,)),
    ]
    assert all(readable(r) for r in train) and readable(test[0])
    assert not Path(test[1].path).exists() and test[1].path.endswith(
        "abseiling/0wR5jVB-WPk_000417_000427.mp4"
    )  # reported missing later
    assert ds.split("val") == test


def test_ssv2(tmp_path):
    (tmp_path / "something-something-v2-labels.json").write_text(
        json.dumps({"Approaching something with your camera": "0", "Putting something on a surface": "1"})
    )
    (tmp_path / "something-something-v2-train.json").write_text(
        json.dumps(
            [
                {
                    "id": "78687",
                    "label": "putting a cup on a table",
                    "template": "Putting [something] on a surface",
                    "placeholders": ["a cup"],
                },
                {
                    "id": "42326",
                    "label": "approaching a cat with your camera",
                    "template": "Approaching [something] with your camera",
                    "placeholders": ["a cat"],
                },
            ]
        )
    )
    (tmp_path / "something-something-v2-validation.json").write_text(
        json.dumps(
            [
                {
                    "id": "74225",
                    "label": "putting pen on a desk",
                    "template": "Putting [something] on a surface",
                    "placeholders": ["pen"],
                }
            ]
        )
    )
    for vid in ("78687", "42326", "74225"):
        video(tmp_path / f"20bn-something-something-v2/{vid}.webm")
    ds = build("ssv2", root=str(tmp_path))
    assert ds.num_classes == 2
    assert [(r.video_id, r.labels) for r in ds.split("train")] == [("78687", (1,)), ("42326", (0,))]
    assert ds.split("test")[0].labels == (1,) and readable(ds.split("test")[0])


def test_ucf101(tmp_path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n")
    (lists / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\nHandstandPushups/v_HandStandPushups_g08_c01.avi 2\r\n"
    )
    (lists / "testlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\nHandStandPushups/v_HandStandPushups_g01_c01.avi\r\n"
    )
    for rel in (
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
        "HandstandPushups/v_HandStandPushups_g08_c01.avi",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
    ):
        video(tmp_path / "UCF-101" / rel)
    ds = build("ucf101", root=str(tmp_path), split=1)
    assert [r.labels for r in ds.split("train")] == [(0,), (1,)]
    test = ds.split("test")
    assert [r.labels for r in test] == [(0,), (1,)] and readable(test[0])
    assert ds.split_names() == ("train", "test")


def test_hmdb51(tmp_path):
    splits = tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    (splits / "brush_hair_test_split1.txt").write_text(
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \nAtempting_to_comb_my_hair_brush_hair_u_nm_np2_le_goo_0.avi 2 \n"
    )
    (splits / "cartwheel_test_split1.txt").write_text(
        "Acrobacias_de_un_fenomeno_cartwheel_f_cm_np1_ba_bad_8.avi 1 \nunused_cartwheel.avi 0 \n"
    )
    (splits / "brush_hair_test_split2.txt").write_text("April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2 \n")
    (splits / "cartwheel_test_split2.txt").write_text("unused_cartwheel.avi 1 \n")
    for rel in (
        "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi",
        "brush_hair/Atempting_to_comb_my_hair_brush_hair_u_nm_np2_le_goo_0.avi",
        "cartwheel/Acrobacias_de_un_fenomeno_cartwheel_f_cm_np1_ba_bad_8.avi",
    ):
        video(tmp_path / "videos" / rel)
    ds = build("hmdb51", root=str(tmp_path))
    assert ds.class_names == ["brush_hair", "cartwheel"]
    assert [r.labels for r in ds.split("train")] == [(0,), (1,)]
    assert [r.video_id for r in ds.split("test")] == ["Atempting_to_comb_my_hair_brush_hair_u_nm_np2_le_goo_0"]
    assert readable(ds.split("test")[0])
    assert [r.labels for r in build("hmdb51", root=str(tmp_path), split=2).split("test")] == [(0,)]


def write_charades(root: Path, train_rows: list[str], test_rows: list[str]) -> None:
    """The official class list and CSVs (``Charades_v1_{classes.txt,train.csv,test.csv}``) with these rows."""
    (root / "Charades_v1_classes.txt").write_text("".join(f"c{i:03d} class number {i}\n" for i in range(157)))
    header = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
    (root / "Charades_v1_train.csv").write_text(header + "".join(row + "\n" for row in train_rows))
    (root / "Charades_v1_test.csv").write_text(header + "".join(row + "\n" for row in test_rows))


def test_charades(tmp_path):
    write_charades(
        tmp_path,
        [
            '46GP8,HR43,Kitchen,6,7,Yes,"A person cooks, then eats.",food;stove,"A person is cooking.",'
            "c092 11.90 21.20;c147 0.00 12.60,24.83",
            "N11GT,0KZ7,Stairs,6,7,Yes,A person walks.,stairs,A person walks.,,8.00",
        ],
        ["YSKX3,KQFM,Bedroom,5,5,Yes,Sleeping.,bed,Sleeps.,c006 0.00 5.10,5.10"],
    )
    for vid in ("46GP8", "N11GT", "YSKX3"):
        video(tmp_path / f"Charades_v1_480/{vid}.mp4")
    ds = build("charades", root=str(tmp_path))
    assert ds.multilabel and ds.num_classes == 157 and ds.class_names[92] == "class number 92"
    first, empty = ds.split("train")
    assert first.labels == (92, 147) and first.segments == ((11.9, 21.2, 92), (0.0, 12.6, 147))
    assert empty.labels == ()
    assert ds.split("test")[0].labels == (6,) and readable(ds.split("test")[0])


def test_breakfast(tmp_path):
    base = tmp_path / "BreakfastII_15fps_qvga_sync"
    for rel in (
        "P03/cam01/P03_cereals.avi",
        "P03/cam02/P03_cereals.avi",
        "P03/webcam01/P03_cereals.avi",
        "P03/stereo/P03_cereals_ch0.avi",
        "P03/stereo/P03_cereals_ch1.avi",
        "P03/webcam01/P03_coffee.avi",
        "P16/cam01/P16_tea.avi",
        "P42/stereo/P42_salat_ch1.avi",
        "P54/cam02/P54_scrambledegg.avi",
    ):
        video(base / rel)
    (base / "P16/cam01/README.txt").write_text("not a video")
    (base / "P03/cam01/P03_cereals.avi.labels").write_text("1-30 SIL\n")  # the release's label files are not videos
    s1 = build("breakfast", root=str(tmp_path), split="s1")
    assert s1.num_classes == 10
    test = {r.video_id: r for r in s1.split("test")}
    # every camera view is its own video (same file name in three folders), the stereo pair is one video
    assert sorted(test) == [
        "P03_cam01_P03_cereals",
        "P03_cam02_P03_cereals",
        "P03_stereo01_P03_cereals",
        "P03_webcam01_P03_cereals",
        "P03_webcam01_P03_coffee",
    ]
    assert len({r.path for r in test.values()}) == 5
    assert test["P03_stereo01_P03_cereals"].path.endswith("P03/stereo/P03_cereals_ch0.avi")
    assert test["P03_cam02_P03_cereals"].meta["camera"] == "cam02" and test["P03_cam02_P03_cereals"].labels == (0,)
    assert len(s1.split("train")) == 3
    s4 = build("breakfast", root=str(tmp_path), split="s4", stereo_channel=1)
    assert sorted((r.video_id, r.labels) for r in s4.split("test")) == [
        ("P42_stereo01_P42_salat", (6,)),
        ("P54_cam02_P54_scrambledegg", (8,)),
    ]
    assert s4.split("test")[0].path.endswith("P42_salat_ch1.avi") and readable(s4.split("test")[0])
    ch1 = {r.video_id: r.path for r in s4.split("train")}
    assert ch1["P03_stereo01_P03_cereals"].endswith("_ch1.avi")
    # channel 0 preferred, channel 1 read where channel 0 is absent: the view is never lost
    assert build("breakfast", root=str(tmp_path), split="s4").split("test")[0].path.endswith("P42_salat_ch1.avi")


def activitynet_doc() -> dict:
    """A small ``activity_net.v1-3.min.json`` with the official file's full field set: ``version``;
    ``taxonomy`` nodes with ``nodeId``, ``nodeName``, ``parentId``, ``parentName`` (a Root, inner
    nodes, leaves = classes, one leaf used by no video of this excerpt); ``database`` entries with
    ``subset``, ``duration``, ``resolution``, ``url``, ``annotations`` (``segment``, ``label``), and
    "testing" entries whose annotations are empty (the test labels are withheld)."""
    sport = "Participating in Sports, Exercise, or Recreation"
    taxonomy = [
        {"nodeId": 0, "nodeName": "Root", "parentId": None, "parentName": None},
        {"nodeId": 1, "nodeName": "Sports, Exercise, and Recreation", "parentId": 0, "parentName": "Root"},
        {
            "nodeId": 2,
            "nodeName": "Participating in Sports, Exercise, or Recreation",
            "parentId": 1,
            "parentName": "Sports, Exercise, and Recreation",
        },
        {"nodeId": 3, "nodeName": "Long jump", "parentId": 2, "parentName": sport},
        {"nodeId": 4, "nodeName": "Javelin throw", "parentId": 2, "parentName": sport},
        {"nodeId": 5, "nodeName": "Household Activities", "parentId": 0, "parentName": "Root"},
        {"nodeId": 6, "nodeName": "Vacuuming floor", "parentId": 5, "parentName": "Household Activities"},
    ]

    def entry(subset, duration, annotations):
        return {
            "annotations": annotations,
            "duration": duration,
            "resolution": "640x360",
            "subset": subset,
            "url": "https://www.youtube.com/watch?v=" + "x" * 11,
        }

    database = {
        "sJFgo9H6zNo": entry("training", 139.042, [{"label": "Long jump", "segment": [0.01, 123.42]}]),
        "9eniCub7u60": entry(
            "training",
            62.0,
            [{"label": "Javelin throw", "segment": [2.1, 30.5]}, {"label": "Javelin throw", "segment": [33.0, 60.2]}],
        ),
        "V1zhqaGFY2A": entry(
            "validation",
            136.98,
            [{"label": "Javelin throw", "segment": [16.9, 52.3]}, {"label": "Javelin throw", "segment": [60.0, 80.0]}],
        ),
        "5n7NCViB5TU": entry("testing", 121.44, []),
        "zzz_testing": entry("testing", 10.0, []),
    }
    return {"version": "VERSION 1.3", "taxonomy": taxonomy, "database": database}


def test_activitynet(tmp_path):
    (tmp_path / "activity_net.v1-3.min.json").write_text(json.dumps(activitynet_doc(), separators=(",", ":")))
    video(tmp_path / "videos/v_sJFgo9H6zNo.mp4")
    video(tmp_path / "videos/V1zhqaGFY2A.mkv")
    video(tmp_path / "videos/v_5n7NCViB5TU.mp4")  # a testing video present on disk stays out of every split
    ds = build("activitynet", root=str(tmp_path))
    # classes are the taxonomy's leaves, also those no video of this copy uses; inner nodes never are
    assert ds.class_names == ["Javelin throw", "Long jump", "Vacuuming floor"]
    assert [(r.video_id, r.labels) for r in ds.split("train")] == [("9eniCub7u60", (0,)), ("sJFgo9H6zNo", (1,))]
    assert ds.split("train")[1].segments == ((0.01, 123.42, 1),) and ds.split("train")[1].meta["duration"] == 139.042
    (val,) = ds.split("test")
    assert val.labels == (0,) and len(val.segments) == 2 and val.path.endswith(".mkv") and readable(val)
    assert ds.split("val") == [val]
    listed = {r.video_id for split in ds.split_names() for r in ds.split(split)}
    assert not listed & {"5n7NCViB5TU", "zzz_testing"}  # withheld test labels: no unlabelled video sneaks in
    assert all(r.labels for split in ds.split_names() for r in ds.split(split))


def test_generic_csv_and_json(tmp_path):
    video(tmp_path / "clips/a.mp4")
    video(tmp_path / "clips/b.mp4")
    (tmp_path / "train.csv").write_text(
        "path,labels,segments,relevance\nclips/a.mp4,cat;dog,cat 0.0 0.4,00111100\nclips/b.mp4,dog,,\n"
    )
    (tmp_path / "test.json").write_text(
        json.dumps({"videos": [{"id": "bee", "path": "clips/b.mp4", "labels": ["dog"], "camera": 2}]})
    )
    ds = build("generic", root=str(tmp_path), train="train.csv", test="test.json", multilabel=True)
    assert ds.class_names == ["cat", "dog"] and ds.multilabel
    a, b = ds.split("train")
    assert (
        a.video_id == "clips/a"
        and a.labels == (0, 1)
        and a.segments == ((0.0, 0.4, 0),)
        and a.relevance == (0, 0, 1, 1, 1, 1, 0, 0)
    )
    assert b.labels == (1,) and b.relevance is None
    (t,) = ds.split("test")
    assert t.video_id == "bee" and t.meta["camera"] == 2 and readable(t)
    assert sorted(ds.annotation_files()) == sorted([str(tmp_path / "train.csv"), str(tmp_path / "test.json")])


def test_registered_names():
    assert {
        "kinetics400",
        "kinetics600",
        "ssv2",
        "ucf101",
        "hmdb51",
        "charades",
        "breakfast",
        "activitynet",
        "generic",
        "skim-digits",
    } <= set(DATASETS.names())


def test_charades_segment_with_start_after_end_is_swapped_and_reported(tmp_path):
    write_charades(
        tmp_path,
        [
            "46GP8,HR43,Kitchen,6,7,Yes,cooks,food,cooks,c092 11.90 21.20,24.83",
            "ZZ9QX,HR43,Kitchen,6,7,Yes,eats,food,eats,c147 9.40 3.10;c006 0.00 2.00,12.00",
        ],
        ["YSKX3,KQFM,Bedroom,5,5,Yes,Sleeps,bed,Sleeps,c006 0.00 5.10,5.10"],
    )
    ds = build("charades", root=str(tmp_path))
    _, swapped = ds.split("train")
    assert swapped.segments == ((3.1, 9.4, 147), (0.0, 2.0, 6)) and swapped.labels == (6, 147)
    assert all(start <= end for r in ds.split("train") for start, end, _ in r.segments)
    assert len(ds.notes) == 1
    assert ds.notes[0].startswith("Charades_v1_train.csv:3: video ZZ9QX: segment 'c147 9.40 3.10'")


def _registered_formats():
    """The built-in annotated formats (not the test plugins other modules register)."""
    return [n for n in DATASETS.names() if n != "skim-digits" and DATASETS.get(n).__module__.startswith("harness.")]


@pytest.mark.parametrize("name", _registered_formats())
def test_missing_or_empty_root_is_an_error_for_every_format(tmp_path, name):
    for root, why in [(tmp_path / "typo", "no such folder"), (tmp_path / "empty", "is empty")]:
        if why == "is empty":
            root.mkdir()
        ds = build(name, root=str(root))
        with pytest.raises(DatasetError, match=f"parameter root: .*{why}"):
            ds.split("train")


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("hmdb51", {"split": 4}, "parameter split: expected one of 1, 2, 3, got 4"),
        ("breakfast", {"split": "S1"}, "parameter split: expected one of 's1', 's2', 's3', 's4', got 'S1'"),
        ("ucf101", {"split": "1"}, "parameter split: expected one of 1, 2, 3, got '1'"),
        ("generic", {"multilabel": "maybe"}, "parameter multilabel: expected true or false"),
    ],
)
def test_dataset_parameters_are_checked_against_their_declarations(name, params, message):
    with pytest.raises(DatasetError, match=message):
        build(name, **params)


def test_data_check_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    report = tmp_path / "bad.csv"
    hmdb = tmp_path / "hmdb"
    (hmdb / "testTrainMulti_7030_splits").mkdir(parents=True)
    (hmdb / "testTrainMulti_7030_splits/brush_hair_test_split1.txt").write_text("a.avi 1 \nb.avi 2 \n")
    for argv, words in [
        (["hmdb51", "--param", "root=/typo"], "parameter root: no such folder '/typo'"),
        (
            ["hmdb51", "--param", f"root={tmp_path / 'hmdb'}", "--param", "split=4"],
            "parameter 'split': expected one of 1, 2, 3, got 4",
        ),
        (
            ["hmdb51", "--param", f"root={hmdb}", "--param", "split=2"],
            "parameter splits_dir: no <class>_test_split2.txt",
        ),
        (["breakfast", "--param", "split=S1"], "parameter 'split': expected one of 's1'"),
        (["breakfast", "--param", f"root={tmp_path}"], "parameter videos_dir: no such path"),
    ]:
        code = data_main(["data", "check", *argv, "--csv", str(report)])
        captured = capsys.readouterr()
        assert code == 2 and not report.exists(), argv
        assert captured.err.count("\n") == 2 and "Traceback" not in captured.err, captured.err  # the line + the timing
        assert captured.err.startswith("skimbench: error: dataset ") and words in captured.err, captured.err


def test_breakfast_official_bundles_decide_the_split(tmp_path):
    base = tmp_path / "BreakfastII_15fps_qvga_sync"
    for rel in (
        "P03/cam01/P03_cereals.avi",
        "P03/stereo/P03_cereals_ch0.avi",
        "P03/stereo/P03_cereals_ch1.avi",
        "P03/webcam02/P03_cereals.avi",
        "P16/cam01/P16_tea.avi",
    ):
        video(base / rel)
    bundles = tmp_path / "splits"
    bundles.mkdir()
    # MS-TCN's bundles name each video by its ground-truth file; the stereo view is listed once
    (bundles / "test.split1.bundle").write_text(
        "P03_cam01_P03_cereals.txt\nP03_stereo01_P03_cereals.txt\nP03_cam02_P03_cereals.txt\n"
    )
    (bundles / "train.split1.bundle").write_text("P16_cam01_P16_tea.txt\n")
    ds = build("breakfast", root=str(tmp_path), bundles_dir="splits")
    test = ds.split("test")
    assert [r.video_id for r in test] == ["P03_cam01_P03_cereals", "P03_stereo01_P03_cereals", "P03_cam02_P03_cereals"]
    assert test[1].path.endswith("P03/stereo/P03_cereals_ch0.avi") and readable(test[1])
    assert test[2].path.endswith("P03/cam02/P03_cereals.avi") and not Path(test[2].path).exists()  # listed: missing
    assert [r.labels for r in ds.split("train")] == [(9,)]  # webcam02, in no bundle, is left out
    (bundles / "train.split1.bundle").write_text("P16_cam01_tea.txt\n")
    with pytest.raises(DatasetError, match=r"train.split1.bundle:1: 'P16_cam01_tea.txt' is not"):
        build("breakfast", root=str(tmp_path), bundles_dir="splits").split("train")

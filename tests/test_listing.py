"""Local inputs listed by the driver (issue 24, items 9 and 11): names Spark's file index cannot take
or hides, the hidden-file rule, and the one plain form of a record's path. No Spark needed."""

from __future__ import annotations

import glob
import os

from sparkasr.job.listing import list_local, plain_path


def _touch(path, data=b"RIFF"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def test_directories_globs_and_named_files(tmp_path):
    d = tmp_path / "calls"
    meeting = _touch(d / "10:30 meeting.wav")
    under = _touch(d / "_x.wav")
    upper = _touch(d / "sub" / "B.FLAC")
    hidden = _touch(d / ".x.wav")
    in_hidden = _touch(d / ".trash" / "old.wav")
    _touch(d / "notes.txt")
    _touch(d / "._resource.wav")
    os.symlink(d, d / "sub" / "loop")  # a link back up the tree: listed once

    walked = list_local([str(d)])
    assert walked.files == sorted([meeting, under, upper])
    assert walked.hidden == sorted([hidden, in_hidden, str(d / "._resource.wav")])
    assert "skipped 3 audio files with hidden names" in walked.hidden_note()

    globbed = list_local([glob.escape(str(d)) + "/*.wav"])  # like a shell, '*' skips a leading '.'
    assert globbed.files == sorted([meeting, under]) and not globbed.hidden

    named = list_local([hidden, str(d / "notes.txt"), meeting, meeting])
    assert named.files == sorted([hidden, str(d / "notes.txt"), meeting])  # named: always, once

    both = list_local([str(d), hidden])
    assert hidden in both.files and hidden not in both.hidden


def test_an_existing_name_with_glob_characters_is_taken_as_it_is(tmp_path):
    d = tmp_path / "take [1]"
    f = _touch(d / "a?.wav")
    assert list_local([str(d)]).files == [f]
    assert list_local([f]).files == [f]


def test_plain_paths():
    assert plain_path("file:///data/a%20b%5B1%5D.wav") == "/data/a b[1].wav"
    assert plain_path("file:/data/x.wav") == "/data/x.wav"
    assert plain_path("/data/./sub/../10:30 a.wav") == "/data/10:30 a.wav"
    assert plain_path("rel/a.wav", "/manifests") == "/manifests/rel/a.wav"
    assert plain_path("/abs/a.wav", "/manifests") == "/abs/a.wav"
    assert plain_path("a%20b.wav", "/m") == "/m/a%20b.wav"  # a plain path is never decoded
    assert plain_path("s3a://bucket/a b.wav") == "s3a://bucket/a b.wav"
    assert plain_path("rel/a.wav", "s3a://bucket/lists") == "s3a://bucket/lists/rel/a.wav"
    assert plain_path("x.wav") == os.path.join(os.getcwd(), "x.wav")


def test_a_local_csv_manifest_is_read_by_the_driver_as_spark_reads_it(tmp_path):
    from sparkasr.job.run import _manifest_rows, input_id, read_csv_manifest

    clip = _touch(tmp_path / "audio" / "a, b.wav")
    m = tmp_path / "m.csv"
    m.write_text(
        'path,reference,speaker\n"audio/a, b.wav","say ""hi""\nthere",\n\n/elsewhere/x.wav,,s2\nshort.wav\n',
        encoding="utf-8",
    )
    names, rows = read_csv_manifest(str(m))
    assert names == ["path", "reference", "speaker"]
    # quoted separator, doubled quote and a line break inside quotes; empty fields null; blank line skipped;
    # a short row padded with nulls (Spark's PERMISSIVE mode)
    assert rows == [
        ["audio/a, b.wav", 'say "hi"\nthere', None],
        ["/elsewhere/x.wav", None, "s2"],
        ["short.wav", None, None],
    ]
    got = _manifest_rows(str(m))
    assert got.columns == ("path", "reference", "speaker", "input_id")
    assert [r[0] for r in got.rows] == [clip, "/elsewhere/x.wav", str(tmp_path / "short.wav")]  # against its directory
    ids = got.ids()
    assert ids == [input_id(r[0]) for r in got.rows] and len(set(ids)) == 3
    assert got.sizes == [os.path.getsize(clip), 0, 0]  # the missing files: size unknown
    assert input_id(clip) != input_id(clip + "x")


def test_manifests_whose_header_spark_would_rename_are_left_to_spark(tmp_path):
    from sparkasr.job.run import read_csv_manifest

    for header in ("path,path", "path,"):
        m = tmp_path / "m.csv"
        m.write_text(f"{header}\n/a.wav,b\n")
        assert read_csv_manifest(str(m)) is None


def test_fewer_tasks_than_cores_share_the_idle_cores():
    from sparkasr.job.run import threads_for_few_tasks

    class Conf:
        def __init__(self, cores):
            self.cores = cores

        def get(self, key, default=None):
            return self.cores if key == "spark.executor.cores" and self.cores else default

    class Spark:
        def __init__(self, cores=None):
            self.conf = Conf(cores)

    assert threads_for_few_tasks(Spark(), 2, 1, 0) == 2  # local[2], one long file: both cores
    assert threads_for_few_tasks(Spark(), 8, 3, 0) == 2
    assert threads_for_few_tasks(Spark("4"), 16, 1, 0) == 4  # at most an executor's cores
    assert threads_for_few_tasks(Spark(), 2, 8, 0) == 0  # enough tasks: spark.task.cpus each
    assert threads_for_few_tasks(Spark(), 2, 1, 3) == 0  # threads set by the user: kept


def test_driver_built_inputs_are_placed_by_spark_s_own_hash_on_connect():
    from sparkasr.job.tasks import spark_int_hash, task_keys

    assert (spark_int_hash(0), spark_int_hash(1)) == (933211791, -559580957)  # SELECT hash(0), hash(1)
    for p in (1, 4, 7, 64):
        keys = task_keys(p)
        assert [spark_int_hash(k) % p for k in keys] == list(range(p))  # pmod: one key per task


def test_rows_are_dealt_so_that_tasks_carry_about_the_same_bytes():
    from sparkasr.job.tasks import deal

    assert deal([5] * 7, 3) == [[0, 3, 6], [1, 4], [2, 5]]  # one size: in turn
    # the largest first, each to the lightest task; a task's rows keep their order
    sizes = [10, 100, 10, 10, 50, 40, 10, 0]
    tasks = deal(sizes, 3)
    assert tasks == [[1], [2, 4, 6], [0, 3, 5, 7]]
    assert sorted(i for t in tasks for i in t) == list(range(len(sizes)))
    assert [sum(sizes[i] for i in t) for t in tasks] == [100, 70, 60]
    # sorted by length, as a manifest may be: in turn, the last task would get every long file
    sizes = list(range(1, 801))
    loads = [sum(sizes[i] for i in t) for t in deal(sizes, 8)]
    assert max(loads) - min(loads) <= max(sizes) and max(loads) / min(loads) < 1.01
    assert deal([3, 3], 8) == [[0], [1]] and deal([], 4) == [[], [], [], []]


def test_with_more_tasks_than_slots_the_tasks_launched_last_are_the_short_ones():
    from sparkasr.job.tasks import FIRST_TO_LAST, deal, weights

    assert weights(4, 4) == [1.0] * 4 and weights(1, 1) == [1.0] and weights(3, 8) == [1.0] * 3
    w = weights(8, 2)
    assert w[0] == FIRST_TO_LAST and w[-1] == 1.0 and w == sorted(w, reverse=True)
    sizes = [100 + (i * 7919) % 50 for i in range(720)]
    loads = [sum(sizes[i] for i in t) for t in deal(sizes, 8, 2)]
    total = sum(loads)
    for load, share in zip(loads, w):  # each task's share, within one row
        assert abs(load / total - share / sum(w)) <= max(sizes) / total
    assert deal(sizes, 8, 8) == deal(sizes, 8)  # one wave: equal shares


def test_driver_rows_union_by_name_and_drop_what_is_done():
    from sparkasr.job.tasks import DriverRows

    listed = DriverRows(("path", "input_id"), [("/a.wav", "ia"), ("/b.wav", "ib")], [1, 2])
    manifest = DriverRows(("path", "reference", "input_id"), [("/c.wav", "hi", "ic")], [3])
    both = DriverRows.union([listed, manifest])
    assert both.columns == ("path", "input_id", "reference")
    assert both.rows == [("/a.wav", "ia", None), ("/b.wav", "ib", None), ("/c.wav", "ic", "hi")]
    assert both.sizes == [1, 2, 3] and len(both) == 3
    left = both.without(iter(["ib", "elsewhere"]))
    assert left.ids() == ["ia", "ic"] and left.sizes == [1, 3]


def test_driver_rows_become_one_partition_per_task_without_a_shuffle(spark):
    from pyspark.sql import functions as F

    from sparkasr.job.tasks import DriverRows, deal, frame_in_tasks

    sizes = [(i * 37) % 11 + 1 for i in range(40)]
    rows = DriverRows(("path", "input_id", "note"), [(f"/f{i}.wav", f"id{i}", None) for i in range(40)], sizes)
    df = frame_in_tasks(spark, rows, 6)
    assert df.columns == ["path", "input_id", "note"] and df.rdd.getNumPartitions() == 6
    assert "Exchange" not in df._jdf.queryExecution().executedPlan().toString()
    per_task = df.select(F.spark_partition_id().alias("p"), "path").collect()
    placed = [[r["path"] for r in per_task if r["p"] == j] for j in range(6)]
    assert placed == [[f"/f{i}.wav" for i in t] for t in deal(sizes, 6)]  # in the dealt order

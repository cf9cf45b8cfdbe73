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
    out, schema, ids = _manifest_rows(str(m))
    assert schema == "`path` string, `reference` string, `speaker` string, input_id string"
    assert [r[0] for r in out] == [clip, "/elsewhere/x.wav", str(tmp_path / "short.wav")]  # against its directory
    assert ids == [input_id(r[0]) for r in out] and len(set(ids)) == 3
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


def test_driver_built_inputs_are_dealt_to_tasks_by_spark_s_own_hash():
    from sparkasr.job.run import spark_int_hash, task_keys

    assert (spark_int_hash(0), spark_int_hash(1)) == (933211791, -559580957)  # SELECT hash(0), hash(1)
    for p in (1, 4, 7, 64):
        keys = task_keys(p)
        assert [spark_int_hash(k) % p for k in keys] == list(range(p))  # pmod: one key per task

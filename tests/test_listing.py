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

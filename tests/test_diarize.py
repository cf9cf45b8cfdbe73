"""Speaker diarization without Spark (sparkasr.diarize): the voice encoder's front end and ONNX
graph, the engine on conversations built from real recordings of different people
(bench/conversations.py: Asterisk prompts in five voices + the LibriVox reader), speakers assigned
to transcript pieces, identity across files, and the diarization error rate (against
pyannote.metrics where it is installed).

One module fixture diarizes the conversations once. Needs the evaluation corpus
(scripts/fetch_eval_corpus.sh) for the voices; the encoder is converted at first use (torch) or
comes from the cache (scripts/setup.sh --all)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import conversations  # noqa: E402
import eval_corpus  # noqa: E402
from sparkasr.diarize import (  # noqa: E402
    DiarizationEngine,
    DiarizationOptions,
    SpeakerTurn,
    assign_speakers,
    label_of,
    merge_voices,
    name_voices,
    resolve_voice_encoder,
)
from sparkasr.diarize.identity import Voice, gallery_voices  # noqa: E402
from sparkasr.diarize.options import IdentityOptions  # noqa: E402
from sparkasr.evaluation import (  # noqa: E402
    bootstrap_ratio,
    corpus_der,
    diarization_stats,
    read_rttm,
    to_rttm,
)
from sparkasr.records import AudioItem  # noqa: E402

MISSING = eval_corpus.missing_reason()
needs_corpus = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
DATA = Path(__file__).resolve().parent / "data"
# (speakers, seconds, seed): short conversations, one of each size
CI_SET = ((2, 45.0, 11), (3, 50.0, 12), (4, 60.0, 13))


@pytest.fixture(scope="module")
def engine():
    return DiarizationEngine(resolve_voice_encoder(), DiarizationOptions(), threads=2)


@pytest.fixture(scope="module")
def diarized(engine):
    """The CI conversations and their diarization (one run shared by the module's tests)."""
    if MISSING:
        pytest.skip(MISSING)
    pool = conversations.voices()
    convs = [conversations.build(f"ci{k}spk", pool, k, s, seed) for k, s, seed in CI_SET]
    items = [AudioItem(c.samples, source=c.name) for c in convs]
    return convs, engine.diarize_batch(items)


def _turns(d):
    return [(t.start, t.end, t.speaker) for t in d.turns]


# -- front end and model ------------------------------------------------------------------------


def test_mel_spectrogram_is_librosas():
    """Resemblyzer's front end (librosa's melspectrogram, Slaney mels, power) as transformers
    computes it (the librosa port)."""
    audio_utils = pytest.importorskip("transformers.audio_utils")
    import soundfile as sf

    from sparkasr.diarize import features

    fb = audio_utils.mel_filter_bank(
        num_frequency_bins=201,
        num_mel_filters=40,
        min_frequency=0,
        max_frequency=8000,
        sampling_rate=16000,
        norm="slaney",
        mel_scale="slaney",
    )
    np.testing.assert_allclose(features.mel_filters(), fb.T, atol=1e-8)
    x, _ = sf.read(str(next((DATA / "librivox").glob("*.wav"))), dtype="float32")
    want = audio_utils.spectrogram(
        x,
        audio_utils.window_function(400, "hann"),
        frame_length=400,
        hop_length=160,
        power=2.0,
        mel_filters=fb,
        center=True,
        pad_mode="constant",
    ).T
    got = features.mel_spectrogram(x, block_frames=37)  # several blocks
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-5 * want.max()


def test_encoder_onnx_is_resemblyzers_network(tmp_path):
    """``sparkasr convert --diarizer`` writes the graph (checked against torch as it exports), and the
    cached encoder is that export."""
    pytest.importorskip("torch")
    from sparkasr.convert.command import convert_main
    from sparkasr.convert.voice_encoder import resemblyzer_weights
    from sparkasr.diarize.encoder import VoiceEncoder

    if resemblyzer_weights() is None:
        pytest.skip("the resemblyzer wheel is not installed (pip install --no-deps resemblyzer)")
    out = tmp_path / "ve"
    assert convert_main(["--diarizer", "--output", str(out)]) == 0
    assert convert_main(["--diarizer", "--model", "tiny.en"]) == 2
    x = np.random.default_rng(0).random((4, 90, 40), dtype=np.float32) * 3
    a = VoiceEncoder(str(out), threads=1).embed(x)
    b = VoiceEncoder(resolve_voice_encoder(), threads=1).embed(x)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


# -- the engine ---------------------------------------------------------------------------------


@needs_corpus
def test_conversations_are_diarized(diarized):
    """Per conversation DER (0.25-s collar, its own mapping) well under 25 %, and the speaker count
    at most one off; together under 15 %."""
    convs, results = diarized
    total = None
    for c, d in zip(convs, results):
        assert d.error is None and d.turns
        st = diarization_stats(c.turns, _turns(d))
        counts = st.counts()
        assert counts.der < 0.25, (c.name, c.speakers, counts.to_dict())
        assert abs(len(d.speakers) - len(c.speakers)) <= 1, (c.name, [s.label for s in d.speakers])
        total = counts if total is None else total + counts
        # turns are on the file's clock, in order, within the file
        assert all(0 <= t.start < t.end <= c.duration_s + 1e-6 for t in d.turns)
        assert [t.start for t in d.turns] == sorted(t.start for t in d.turns)
        assert {s.label for s in d.speakers} == {t.speaker for t in d.turns}
        for s in d.speakers:
            assert s.centroid.shape == (256,) and abs(float(np.linalg.norm(s.centroid)) - 1) < 1e-4
    assert total.der < 0.15, total.to_dict()


@needs_corpus
def test_number_of_speakers_when_given(engine, diarized):
    convs, _ = diarized
    c = convs[2]  # four voices
    for n in (2, 3):
        forced = DiarizationEngine.__new__(DiarizationEngine)
        forced.encoder, forced.options = engine.encoder, DiarizationOptions(num_speakers=n)
        assert len(forced.diarize(c.samples).speakers) == n
    capped = DiarizationEngine.__new__(DiarizationEngine)
    capped.encoder, capped.options = engine.encoder, DiarizationOptions(max_speakers=2)
    assert len(capped.diarize(c.samples).speakers) <= 2


def test_options_are_checked():
    with pytest.raises(ValueError, match="numSpeakers must be an integer >= 0"):
        DiarizationOptions(num_speakers=-1)
    with pytest.raises(ValueError, match=r"minSpeakers \(3\) must not exceed maxSpeakers \(2\)"):
        DiarizationOptions(min_speakers=3, max_speakers=2)


def test_bad_and_silent_items(engine):
    items = [
        AudioItem(None, source="broken.wav", error="broken.wav: cannot read audio"),
        AudioItem(np.zeros(16000 * 3, np.float32), source="silence.wav", offset_s=30.0),
        AudioItem(np.full(16000, np.nan, np.float32), source="nan.wav"),
    ]
    broken, silent, nan = engine.diarize_batch(items)
    assert broken.error == "broken.wav: cannot read audio" and not broken.turns
    assert silent.error is None and silent.turns == [] and silent.offset_s == 30.0
    assert nan.error is None or nan.error.startswith("nan.wav: ")


@needs_corpus
def test_offset_moves_turns_onto_the_files_clock(engine, diarized):
    convs, results = diarized
    c = convs[0]
    moved = engine.diarize(c.samples, "x", offset_s=600.0)
    assert [t.speaker for t in moved.turns] == [t.speaker for t in results[0].turns]
    got = [x - 600.0 for t in moved.turns for x in (t.start, t.end)]
    assert got == pytest.approx([x for t in results[0].turns for x in (t.start, t.end)], abs=2e-3)


# -- transcript pieces --------------------------------------------------------------------------


def test_chunks_get_the_speaker_they_overlap_most():
    turns = [SpeakerTurn(0.0, 2.0, "S1"), SpeakerTurn(2.2, 5.0, "S2"), SpeakerTurn(4.5, 6.0, "S1")]
    # most overlap; in a pause, the nearest turn within 1 s; farther, nobody
    spans = [(0.1, 0.5), (1.9, 2.5), (1.9, 2.1), (4.6, 5.9), (2.02, 2.08), (6.5, 6.8), (7.5, 7.9), (3.0, 3.0)]
    assert assign_speakers(spans, turns) == ["S1", "S2", "S1", "S1", "S1", "S1", None, "S2"]


# -- identity across files ----------------------------------------------------------------------


@needs_corpus
def test_one_label_per_person_across_files(diarized, engine, tmp_path):
    """The files' speakers clustered into global voices: each reference person's speech is under
    one global label in every file (English and Spanish Allison included), and a gallery names
    the voice it knows."""
    convs, results = diarized
    voices = [Voice(f"{c.name}/{s.label}", s.centroid, s.speech_s) for c, d in zip(convs, results) for s in d.speakers]
    threshold = IdentityOptions().threshold
    globals_ = merge_voices(voices, threshold)
    stats = []
    for c, d in zip(convs, results):
        mapping = {s.label: label_of(s.centroid, globals_) for s in d.speakers}
        stats.append(diarization_stats(c.turns, [(a, b, mapping[s]) for a, b, s in _turns(d)]))
    counts, _ = corpus_der(stats)
    per_file = sum((s.counts() for s in stats[1:]), stats[0].counts())
    assert counts.der < per_file.der + 0.10, (counts.to_dict(), per_file.to_dict())
    # a gallery: Carlo's voice from prompts the conversations did not use
    used = {p for c in convs for p in c.clips}
    carlo = [p for p in conversations.voices()["carlo"].clips if p not in used][:5]
    (tmp_path / "carlo").mkdir()
    for i, p in enumerate(carlo):
        (tmp_path / "carlo" / f"{i}{Path(p).suffix}").symlink_to(p)
    gallery = gallery_voices(engine, str(tmp_path))
    named = name_voices(globals_, gallery, IdentityOptions().gallery_threshold)
    carlo_files = [(c, d) for c, d in zip(convs, results) if "carlo" in c.speakers]
    assert carlo_files  # the CI set has him
    for c, d in carlo_files:  # his speech in each file is under the voice the gallery named
        mapping = {s.label: label_of(s.centroid, named) for s in d.speakers}
        st = diarization_stats(c.turns, [(a, b, mapping[s]) for a, b, s in _turns(d)])
        best = max((v, h) for (r, h), v in st.cooccurrence.items() if r == "carlo")[1]
        assert best == "carlo"


# -- DER ----------------------------------------------------------------------------------------


def test_der_counts_by_hand():
    ref = [(0.0, 10.0, "A"), (10.0, 20.0, "B"), (15.0, 18.0, "C")]
    hyp = [(0.0, 9.0, "x"), (9.0, 20.0, "y"), (25.0, 26.0, "y")]
    st = diarization_stats(ref, hyp, collar=0.0)
    c = st.counts()
    # reference speech 23 s; 3 s of C's overlap missed; 1 s false alarm (25-26);
    # A's 9..10 given to y (mapped to B): 1 s confusion
    assert (c.total, c.missed, c.false_alarm, c.confusion) == pytest.approx((23.0, 3.0, 1.0, 1.0))
    # a 0.25-s collar either side of 0, 10, 15, 18 and 20 s is not scored
    c = diarization_stats(ref, hyp, collar=0.25).counts()
    assert (c.total, c.missed, c.false_alarm, c.confusion) == pytest.approx((20.5, 2.5, 1.0, 0.75))


@needs_corpus
def test_der_is_pyannotes(diarized):
    metrics = pytest.importorskip("pyannote.metrics.diarization")
    from pyannote.core import Annotation, Segment, Timeline

    convs, results = diarized
    for collar in (0.0, 0.25):
        for c, d in zip(convs, results):
            ref, hyp = Annotation(), Annotation()
            for a, b, s in c.turns:
                ref[Segment(a, b)] = s
            for a, b, s in _turns(d):
                hyp[Segment(a, b)] = s
            uem = Timeline([Segment(0.0, c.duration_s)])
            # pyannote's collar is the total width around a boundary: 2 x ours
            want = metrics.DiarizationErrorRate(collar=2 * collar)(ref, hyp, detailed=True, uem=uem)
            got = diarization_stats(c.turns, _turns(d), collar=collar, uem=(0.0, c.duration_s)).counts()
            assert got.total == pytest.approx(want["total"], abs=1e-6)
            assert got.missed == pytest.approx(want["missed detection"], abs=1e-6)
            assert got.false_alarm == pytest.approx(want["false alarm"], abs=1e-6)
            assert got.confusion == pytest.approx(want["confusion"], abs=1e-6)


def test_rttm_round_trip():
    turns = [(0.5, 1.25, "S1"), (1.5, 3.0, "Jane Doe")]
    text = to_rttm("my file", turns)
    assert text.splitlines()[0] == "SPEAKER my_file 1 0.500 0.750 <NA> <NA> S1 <NA> <NA>"
    assert read_rttm(text) == {"my_file": [(0.5, 1.25, "S1"), (1.5, 3.0, "Jane_Doe")]}


def test_bootstrap_ratio():
    iv = bootstrap_ratio([1.0, 2.0, 3.0, 0.0], [10.0, 10.0, 10.0, 10.0], resamples=2000)
    assert iv.estimate == pytest.approx(0.15)
    assert iv.low < 0.15 < iv.high and iv.units == 4


# -- the benchmark and the printed transcript ----------------------------------------------------


@needs_corpus
def test_benchmark_runs_on_the_ci_set(tmp_path):
    """bench/run_diarization.py --quick (the CI-sized set, without the tiny.en timing) writes its
    table: DER per size, global DER, speaker counts."""
    import json

    import run_diarization

    assert run_diarization.main(["--quick", "--no-transcribe", "--results", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "diarization-quick.json").read_text())
    assert [r["file"] for r in res["files"]] == ["ci2spk", "ci3spk", "ci4spk"]
    assert res["overall"]["der"] < 0.15 and res["global"]["der"] < 0.2
    md = (tmp_path / "diarization-quick.md").read_text()
    assert "| all | 3 |" in md and "Global DER" in md


def test_printed_transcript_has_a_line_per_turn():
    from sparkasr.cli import speaker_lines

    record = {
        "speakers": [{"start": 0.0, "end": 2.0, "speaker": "S1"}, {"start": 2.1, "end": 3.0, "speaker": "S2"}],
        "chunks": [
            {"text": "Hello", "timestamp": [0.0, 0.5], "speaker": "S1"},
            {"text": "there.", "timestamp": [0.6, 1.9], "speaker": "S1"},
            {"text": " Hi!", "timestamp": [2.1, 3.0], "speaker": "S2"},
        ],
    }
    assert speaker_lines(record) == ["[   0.0-   1.9] S1: Hello there.", "[   2.1-   3.0] S2: Hi!"]
    assert speaker_lines({"chunks": record["chunks"]}) == []  # not diarized

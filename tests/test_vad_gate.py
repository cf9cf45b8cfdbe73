"""No hallucinated text on near-silence, noise and tones (issue 24, item 8), without losing speech.

Generated signals (seeded): 60 s of white noise at -90 dBFS (Whisper tiny.en wrote "you you"),
-30 dBFS white noise, brown noise, a 45-s 440-Hz tone (it wrote "I'm going to take a look at it."),
a 1-kHz tone ("Please do not forget to subscribe to our channel."), a DTMF digit ("You"). With the
default ``vadGate=auto`` each gives an empty transcript, no error; the real clips decoded in the
same batches give exactly the text they give with the gate off (nothing dropped), on every
strategy; a long file of speech, tone and speech keeps both speech parts and nothing over the tone.

Cost: greedy decoding (beam 1; the gate acts on whatever a decode writes, beam search is tested
elsewhere), and five of the ten real clips (1.6-7.1 s, from both sets: the short card clips
are the ones a gate could drop).

Not covered: ``strategy="sequential"`` with word timestamps on that long file writes a loop
("Clothes Four of Clothes ...") from the tone into the next speech and seeks past 20 s of it;
that is faster-whisper's own long-form algorithm (same result from ``WhisperModel.transcribe``),
and the loop's segment overlaps real speech, so the gate keeps it. ``vadFilter`` avoids it.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from conftest import ALL_CLIPS
from sparkasr.audio import SAMPLE_RATE, decode_audio
from sparkasr.records import AudioItem
from sparkasr.whisper import RuntimeOptions, WhisperEngine, WhisperOptions
from sparkasr.whisper.models import resolve_whisper_model

RUNTIME = RuntimeOptions(cpu_threads=2)


def _signals():
    rng = np.random.default_rng(24)
    t = np.arange(45 * SAMPLE_RATE) / SAMPLE_RATE
    db = lambda level: 10 ** (level / 20)  # noqa: E731
    return {
        "noise -90 dBFS 60 s": (rng.standard_normal(60 * SAMPLE_RATE) * db(-90)).astype(np.float32),
        "noise -30 dBFS 20 s": (rng.standard_normal(20 * SAMPLE_RATE) * db(-30)).astype(np.float32),
        "brown noise 20 s": (np.cumsum(rng.standard_normal(20 * SAMPLE_RATE)) * 1e-3).astype(np.float32),
        "tone 440 Hz 45 s": (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        "tone 1 kHz 10 s": (0.3 * np.sin(2 * np.pi * 1000 * t[: 10 * SAMPLE_RATE])).astype(np.float32),
        "DTMF 1 3 s": (0.2 * (np.sin(2 * np.pi * 697 * t[:48000]) + np.sin(2 * np.pi * 1209 * t[:48000]))).astype(
            np.float32
        ),
    }


SIGNALS = _signals()
# every other clip: three LibriVox sentences (3.3-7.1 s) and two card clips (1.6-2 s)
SPEECH = {p.name: decode_audio(p) for p, _ in ALL_CLIPS[::2]}
LONG_SIGNALS = {n for n, x in SIGNALS.items() if len(x) > 30 * SAMPLE_RATE}


@pytest.fixture(scope="module")
def tiny_path():
    return resolve_whisper_model(None).path


def _items(signals=SIGNALS):
    both = {**{n: SIGNALS[n] for n in signals}, **SPEECH}
    names = sorted(both, key=lambda n: (zlib.crc32(n.encode()) % 7, n))  # signals and speech interleaved
    return names, [AudioItem(both[n], source=n) for n in names]


# batch_size=1: a clip's text does not depend on which clips share its model call, so the texts
# with and without the signals in the batch can be compared exactly (packing: see below)
BS = 1
BEAM = 1


@pytest.fixture(scope="module")
def gate_off(tiny_path):
    """The signals alone, gate off (the clips' texts without the gate: ``_speech_alone``)."""
    engine = WhisperEngine(tiny_path, WhisperOptions(vad_gate="off", batch_size=BS, beam_size=BEAM), RUNTIME)
    return dict(zip(SIGNALS, engine.transcribe_batch([AudioItem(x, source=n) for n, x in SIGNALS.items()])))


_SPEECH_OFF = {}


def _speech_alone(tiny_path, strategy):
    """The clips alone, gate off: with the gate, packing leaves the silent clips out of its windows,
    so the clips are packed as they are here. The clips are short rows, which every strategy but
    pack decodes batched: one reference serves batch and sequential."""
    strategy = "pack" if strategy == "pack" else "batch"
    if strategy not in _SPEECH_OFF:
        names, items = _items()
        mine = [(n, it) for n, it in zip(names, items) if n in SPEECH]
        opts = WhisperOptions(strategy=strategy, vad_gate="off", batch_size=BS, beam_size=BEAM)
        engine = WhisperEngine(tiny_path, opts, RUNTIME)
        _SPEECH_OFF[strategy] = dict(zip([n for n, _ in mine], engine.transcribe_batch([it for _, it in mine])))
    return _SPEECH_OFF[strategy]


def test_without_the_gate_whisper_hallucinates_on_these_signals(gate_off):
    """The failure the gate exists for (what the default did before it): text on most signals."""
    with_text = [n for n in SIGNALS if gate_off[n].text.strip()]
    print("\n[vad] gate off:", {n: gate_off[n].text for n in SIGNALS})
    assert len(with_text) >= 4, {n: gate_off[n].text for n in SIGNALS}


@pytest.mark.parametrize(
    "gate,strategy", [("auto", "batch"), ("auto", "sequential"), ("auto", "pack"), ("always", "batch")]
)
def test_silence_noise_and_tones_give_empty_transcripts_and_speech_is_kept(tiny_path, strategy, gate):
    """Rows up to 30 s are decoded batched whatever the strategy, so [auto-sequential] takes only the
    signals over 30 s (its own path: faster-whisper's sequential algorithm) with the clips; the short
    signals' auto path is [auto-batch]'s. ``always`` checks every row before the strategy is chosen
    (and pack checks every clip in both modes), so [always-batch] covers always-sequential and
    always-pack; [auto-pack] covers pack's clip check."""
    names, items = _items(LONG_SIGNALS if strategy == "sequential" else SIGNALS)
    opts = WhisperOptions(strategy=strategy, vad_gate=gate, batch_size=BS, beam_size=BEAM)
    got = dict(zip(names, WhisperEngine(tiny_path, opts, RUNTIME).transcribe_batch(items)))
    for n in set(SIGNALS) & set(names):
        assert got[n].text == "" and got[n].error is None and not got[n].chunks, (n, got[n].text)
        assert got[n].duration_s == pytest.approx(len(SIGNALS[n]) / SAMPLE_RATE)
    ref = _speech_alone(tiny_path, strategy)
    for n in SPEECH:
        assert got[n].error is None and got[n].text and got[n].text == ref[n].text, (n, got[n].text, ref[n].text)


_ALONE = []


def _speech_row(tiny_path):
    """The speech part alone (22 s: a short row, decoded batched by either strategy, so once)."""
    if not _ALONE:
        engine = WhisperEngine(tiny_path, WhisperOptions(beam_size=BEAM), RUNTIME)
        _ALONE.append(engine.transcribe_batch([AudioItem(_long_speech(), "s")])[0])
    return _ALONE[0]


def _long_speech():
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    return np.concatenate([x for s in SPEECH.values() for x in (s, pause)])


@pytest.mark.parametrize("strategy", ["batch", "sequential"])
def test_a_long_file_keeps_its_speech_and_nothing_over_a_tone(tiny_path, strategy):
    """speech (5 clips, 22 s) + 45 s of tone + the same speech: a long row (pieces / windows)."""
    speech = _long_speech()
    tone = SIGNALS["tone 440 Hz 45 s"]
    samples = np.concatenate([speech, tone, speech])
    tone_at = (len(speech) / SAMPLE_RATE, (len(speech) + len(tone)) / SAMPLE_RATE)
    opts = dict(strategy=strategy, beam_size=BEAM)  # segment timestamps (see the module docstring for words)
    on = WhisperEngine(tiny_path, WhisperOptions(**opts), RUNTIME).transcribe_batch([AudioItem(samples, "long")])[0]
    alone = _speech_row(tiny_path)
    assert on.error is None
    inside = [c for c in on.chunks if c.start > tone_at[0] + 1.0 and c.end < tone_at[1] - 1.0]
    assert not inside, [(c.text, c.start) for c in inside]
    words = lambda text: [w.strip(".,!?").lower() for w in text.split()]  # noqa: E731
    n_alone = len(words(alone.text))
    # both copies of the speech are transcribed (within a few words of the speech alone, twice)
    assert abs(len(words(on.text)) - 2 * n_alone) <= 0.1 * n_alone, (on.text, alone.text)
    print(f"\n[vad] {strategy}: {len(words(on.text))} words over speech+tone+speech, {n_alone} for the speech alone")

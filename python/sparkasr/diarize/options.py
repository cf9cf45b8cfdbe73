"""The diarizer's options (:class:`DiarizationOptions`): how many speakers, how alike two voices must
be to be one, and the settings tuned in code (windows, speech detection, change detection). Frozen
and hashable: engines are cached per distinct value."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import BOOL, FLOAT, INT, STRING, option, validate


@dataclass(frozen=True)
class DiarizationOptions:
    """Options of :class:`~sparkasr.diarize.engine.DiarizationEngine` (user-facing ones declared
    with :func:`~sparkasr.options.option`; they are the ``SpeakerDiarizer`` params and the job's
    flags)."""

    num_speakers: int = option(
        "numSpeakers",
        INT,
        0,
        "speakers in each file when known (0 = estimate them, between minSpeakers and maxSpeakers)",
        minimum=0,
    )
    min_speakers: int = option("minSpeakers", INT, 1, "fewest speakers a file is given when estimating", minimum=1)
    max_speakers: int = option("maxSpeakers", INT, 8, "most speakers a file is given when estimating", minimum=1)
    threshold: float = option(
        "speakerThreshold",
        FLOAT,
        0.27,
        "how far apart (cosine distance of voice embeddings, average linkage) two voices are to be told apart: "
        "lower finds more speakers",
        minimum=0.01,
        maximum=1.99,
        key="speaker_threshold",
    )
    label_prefix: str = option(
        "speakerPrefix", STRING, "S", "speaker labels are this prefix and a number (S1, S2, ...)", key="speaker_prefix"
    )
    # -- tuned in code ------------------------------------------------------------------------
    window_s: float = 1.6  # the encoder's training partials: 160 frames
    step_s: float = 0.8  # windows overlap by half
    min_window_s: float = 0.4  # speech shorter than this is labelled by its neighbours, not embedded
    vad_threshold: float = 0.5
    min_speech_s: float = 0.2
    min_silence_s: float = 0.3  # a pause this long ends a speech region
    speech_pad_s: float = 0.05
    change_threshold: float = 0.2  # cosine distance between the windows either side of a speaker change
    min_turn_s: float = 0.5  # a shorter change of speaker inside a region is merged into its neighbours
    min_speaker_s: float = 4.0  # when estimating, a speaker with less speech than this ...
    min_speaker_share: float = 0.03  # ... or this share of the file's speech joins its nearest speaker

    def __post_init__(self):
        validate(self)
        if self.num_speakers == 0 and self.min_speakers > self.max_speakers:
            raise ValueError(f"minSpeakers ({self.min_speakers}) must not exceed maxSpeakers ({self.max_speakers})")
        if not 0 < self.step_s <= self.window_s:
            raise ValueError("step_s must be in (0, window_s]")


@dataclass(frozen=True)
class IdentityOptions:
    """Options of the corpus step that gives one person one label in every file
    (:mod:`sparkasr.diarize.identity`, the ``SpeakerIdentity`` stage)."""

    threshold: float = option(
        "identityThreshold",
        FLOAT,
        0.12,
        "how far apart (cosine distance of speaker centroids, average linkage) two files' speakers are to be "
        "different people; a file's centroid averages many windows, so this is lower than speakerThreshold",
        minimum=0.01,
        maximum=1.99,
        key="identity_threshold",
    )
    gallery: str = option(
        "speakerGallery",
        STRING,
        "",
        "directory of known voices (<name>/<clips> or <name>.<audio>): the speakers they match are labelled by name",
        key="speaker_gallery",
    )
    keep_voiceprints: bool = option(
        "keepVoiceprints",
        BOOL,
        False,
        "keep each speaker's voice embedding (voiceprint) in the output; off, none is stored",
        key="speaker_embeddings",
    )
    # a gallery voice names the nearest global voice within this distance: its reference clips are
    # recorded apart from the files, so they sit farther from a file's centroid than two files do
    gallery_threshold: float = 0.2

    def __post_init__(self):
        validate(self)

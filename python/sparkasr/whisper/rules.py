"""The long-form rules' numbers: where a row is cut, when a window's rest is decoded, when a piece
is heard again, how many rounds each repair gets, and the VAD gate's limits.

Each is a plain module-level constant so that other languages can be generated from this module
(the JVM port follows the same rules); ``docs/long_form.md`` says what each rule does with them.
Seconds throughout.
"""

from __future__ import annotations

# -- windows and pieces ------------------------------------------------------------------------

#: Whisper's window: rows up to this long are short rows; longer ones are cut into pieces of at most this
WINDOW_S = 30.0
#: a piece's end moves back by up to this much to a quiet 100-ms frame
PIECE_SEARCH_S = 5.0
#: the cut goes to the latest frame with at most this times the quietest frame's energy (pieces stay long)
PIECE_CUT_LATEST_WITHIN = 4.0
#: a piece's segment (timestamps=segment) is trimmed to its sound, padded by this much on each side
SOUND_PAD_S = 0.1
#: frames in which sound is found (louder than a tenth of the 95th-percentile frame)
SOUND_FRAME_S = 0.02

# -- the rest of a window that stopped early (timestamped decodes) ----------------------------

#: a window that stops before this time has not started: it is decoded again on the sequential path
REDO_BEFORE_S = 0.1
#: the shortest rest of a window that can hold a word (shorter rests after a closed sentence are dropped)
MIN_REST_S = 0.15
#: rounds of rests after rests; a row still open after them is decoded again on the sequential path
WINDOW_REST_ROUNDS = 8

# -- a long row's pieces, decoded as text (no timestamp tokens) --------------------------------

#: a piece's words must end at least this far into it before its rest is decoded
MIN_TEXT_END_S = 1.0
#: a piece with at least this much sound after its last word has the rest decoded from that word
SOUND_AFTER_WORDS_S = 1.0
#: rounds of rests decoded after a piece's last word (each rest shorter than the one before)
PIECE_REST_ROUNDS = 3
#: sound no word accounts for, in one stretch, that marks a piece (or rest) as skipped: it is heard
#: again with timestamps (at most 1.44 s in a piece that skipped nothing on the Asterisk long-form
#: sets; 4.8 s in the one that did)
UNHEARD_S = 2.0
#: no word is spoken this long: of a word aligned over more, only its last WORD_S count as heard
WORD_S = 2.0
#: frames in which unheard sound is counted
UNHEARD_FRAME_S = 0.02

# -- strategy=sequential -----------------------------------------------------------------------

#: rows longer than this times ``longPieceS`` are decoded in pieces of ``longPieceS``
SEQUENTIAL_PIECE_FACTOR = 1.5
#: a sequential piece's end moves back by up to this much to a quiet 100-ms frame
SEQUENTIAL_SEARCH_S = 10.0
#: words of a sequential piece's text that prompt the next piece (conditionOnPreviousText)
SEQUENTIAL_PROMPT_WORDS = 40

# -- the VAD gate (Silero) ---------------------------------------------------------------------

#: a stretch holds speech when a speech span comes within this of it
VAD_PAD_S = 0.2
#: Silero's spans are padded by this much (faster-whisper's speech_pad_ms)
VAD_SPEECH_PAD_S = 0.1
#: speech spans shorter than this are dropped
VAD_MIN_SPEECH_S = 0.25
#: VAD input per call (a long row never needs more than one block's model input)
VAD_BLOCK_S = 600.0

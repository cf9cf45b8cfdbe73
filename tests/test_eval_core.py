"""WER/CER core (no Spark): parity with jiwer 4, additivity, normalisers, edge cases, report."""

from __future__ import annotations

import json
import math
import pickle
import random
import time
from collections import Counter

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkasr.evaluation import (
    Accumulator,
    ErrorCounts,
    WerResult,
    corpus_counts,
    evaluate_pairs,
    get_normalizer,
    normalizer_name,
    pair_counts,
    write_report,
)
from sparkasr.evaluation.counts import chars, words

# Small alphabets make repeated words (hits, substitutions) likely; whitespace variety exercises
# jiwer's tokenisation (tabs, double spaces, leading/trailing blanks); non-ASCII for unicode.
WORDS = ["a", "b", "the", "cat", "ça", "日本", "Ünï", "x-y", "don't", "A", "B."]
SEPS = [" ", "  ", "\t", " \t ", "\n", "\u3000"]


@st.composite
def sentence(draw):
    n = draw(st.integers(0, 8))
    parts = [draw(st.sampled_from(WORDS)) for _ in range(n)]
    out = draw(st.sampled_from(["", " ", "\t"]))
    for i, w in enumerate(parts):
        out += w
        if i + 1 < n:
            out += draw(st.sampled_from(SEPS))
    return out + draw(st.sampled_from(["", " ", "  "]))


texts = st.one_of(sentence(), st.text(alphabet="ab \tçé日", max_size=12))
pairs = st.lists(st.tuples(texts, texts), min_size=1, max_size=12)


def _assert_parity(c: ErrorCounts, refs, hyps):
    o = jiwer.process_words(refs, hyps)
    oc = jiwer.process_characters(refs, hyps)
    assert (c.hits, c.substitutions, c.deletions, c.insertions) == (
        o.hits,
        o.substitutions,
        o.deletions,
        o.insertions,
    )
    assert (c.char_hits, c.char_substitutions, c.char_deletions, c.char_insertions) == (
        oc.hits,
        oc.substitutions,
        oc.deletions,
        oc.insertions,
    )
    assert abs(c.wer - o.wer) <= 1e-12
    assert abs(c.mer - o.mer) <= 1e-12
    assert abs(c.wil - o.wil) <= 1e-12
    assert abs(c.wip - o.wip) <= 1e-12
    assert abs(c.cer - oc.cer) <= 1e-12


# ---------------------------------------------------------------------------------------------
# Parity with jiwer (property-based)
# ---------------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(pairs)
def test_corpus_counts_equal_jiwer_without_normaliser(ps):
    refs = [r for r, _ in ps]
    hyps = [h for _, h in ps]
    _assert_parity(corpus_counts(refs, hyps, "none"), refs, hyps)


@settings(max_examples=200, deadline=None)
@given(pairs, st.sampled_from(["basic", "lower+ws", "punct", "nfkc+lower", "basic+nospace"]))
def test_normalised_counts_equal_jiwer_on_normalised_text(ps, spec):
    norm = get_normalizer(spec)
    refs = [r for r, _ in ps]
    hyps = [h for _, h in ps]
    c = corpus_counts(refs, hyps, spec)
    _assert_parity(c, [norm(r) for r in refs], [norm(h) for h in hyps])


@settings(max_examples=200, deadline=None)
@given(pairs, st.randoms(use_true_random=False))
def test_counts_are_additive_over_any_split_and_order(ps, rnd):
    refs = [r for r, _ in ps]
    hyps = [h for _, h in ps]
    whole = corpus_counts(refs, hyps, "basic")
    idx = list(range(len(ps)))
    rnd.shuffle(idx)
    cut = rnd.randint(0, len(idx))
    left = corpus_counts([refs[i] for i in idx[:cut]], [hyps[i] for i in idx[:cut]], "basic")
    right = corpus_counts([refs[i] for i in idx[cut:]], [hyps[i] for i in idx[cut:]], "basic")
    assert left + right == whole
    assert sum([left, right]) == whole
    assert ErrorCounts.sum(pair_counts(r, h, "basic") for r, h in ps) == whole


@settings(max_examples=100, deadline=None)
@given(pairs)
def test_substitutions_match_jiwer_alignment(ps):
    refs = [r for r, _ in ps]
    hyps = [h for _, h in ps]
    ours = Counter()
    for r, h in ps:
        pair_counts(r, h, "none", substitutions=ours)
    o = jiwer.process_words(refs, hyps)
    theirs = Counter()
    for rw, hw, al in zip(o.references, o.hypotheses, o.alignments):
        for ch in al:
            if ch.type == "substitute":
                for k in range(ch.ref_end_idx - ch.ref_start_idx):
                    theirs[(rw[ch.ref_start_idx + k], hw[ch.hyp_start_idx + k])] += 1
    assert ours == theirs
    assert sum(ours.values()) == corpus_counts(refs, hyps, "none").substitutions


def test_tokenisation_is_jiwers():
    for s in ["", "  ", "a\tb", "a\t\tb", " a  b ", "a\u3000b", "\u3000a"]:
        assert [words(s)] == jiwer.wer_default([s]) or (words(s) == [] and jiwer.wer_default([s]) == [[]])
        assert [list(chars(s))] == jiwer.cer_default([s])


# ---------------------------------------------------------------------------------------------
# Corpus semantics and edge cases
# ---------------------------------------------------------------------------------------------


def test_corpus_wer_is_total_errors_over_total_reference_words_not_mean():
    refs = ["a b c d e f g h i j", "k"]
    hyps = ["a b c d e f g h i j", "z"]
    c = corpus_counts(refs, hyps, "none")
    assert c.wer == pytest.approx(1 / 11)
    mean_of_rates = (0.0 + 1.0) / 2
    assert c.wer != mean_of_rates
    assert c.wer == jiwer.wer(refs, hyps)


def test_empty_reference_semantics_follow_jiwer4():
    e = pair_counts("", "", "basic")
    assert (e.wer, e.mer, e.wil, e.cer) == (0.0, 0.0, 0.0, 0.0)
    assert e.n_empty_reference == 1
    e = pair_counts("", "two words", "basic")
    assert e.insertions == 2 and e.ref_len == 0
    assert e.wer == 2.0 == jiwer.wer("", "two words")  # every hypothesis word an insertion
    assert e.mer == 1.0 and e.wil == 1.0
    # punctuation-only reference normalises to empty
    assert pair_counts("?!", "hello", "basic").wer == 1.0
    # empty hypothesis: all deletions
    d = pair_counts("one two three", "", "basic")
    assert (d.deletions, d.wer, d.wil) == (3, 1.0, 1.0)
    # in a corpus, empty references just add their insertions to the total
    c = corpus_counts(["a b", ""], ["a b", "x y z"], "none")
    assert c.wer == pytest.approx(3 / 2) == jiwer.wer(["a b", ""], ["a b", "x y z"])


def test_nulls_are_counted_and_skipped_not_crashing():
    refs = ["hello world", None, "foo", None]
    hyps = ["hello world", "x", None, None]
    c = corpus_counts(refs, hyps, "basic")
    assert c.n_rows == 4
    assert c.n_null == 3 and c.n_scored == 1
    assert c.n_null_reference == 2 and c.n_null_prediction == 2
    assert c.wer == 0.0 and c.ref_len == 2
    # a null prediction can be scored as an empty hypothesis instead
    e = corpus_counts(refs, hyps, "basic", null_prediction="empty")
    assert e.n_null == 2 and e.deletions == 1 and e.ref_len == 3
    assert e.wer == pytest.approx(1 / 3)
    # nothing scored: rates are nan, not 0
    n = corpus_counts([None], ["a"], "basic")
    assert math.isnan(n.wer) and math.isnan(n.cer)
    with pytest.raises(ValueError):
        pair_counts("a", None, null_prediction="bogus")


def test_unicode_cer_for_languages_without_spaces():
    ref = "今日は良い天気です"
    hyp = "今日は悪い天気です"
    c = pair_counts(ref, hyp, "basic")
    assert c.ref_len == 1 and c.wer == 1.0  # one "word": WER is meaningless here
    assert c.char_substitutions == 1 and c.cer == pytest.approx(1 / 9) == jiwer.cer(ref, hyp)
    # segmented vs unsegmented: 'nospace' makes CER ignore the segmentation
    seg = "今日 は 良い 天気 です"
    assert pair_counts(seg, ref, "basic").cer > 0
    assert pair_counts(seg, ref, "basic+nospace").cer == 0.0


def test_unicode_normalisation():
    # composed vs decomposed, full-width, case folding, curly apostrophe
    assert pair_counts("café", "cafe\u0301", "basic").wer == 0.0
    assert pair_counts("café", "cafe\u0301", "none").wer == 1.0
    assert pair_counts("ＡＢＣ", "abc", "basic").wer == 0.0
    assert pair_counts("STRASSE", "straße", "basic").wer == 0.0
    assert pair_counts("don't stop", "Don\u2019t stop!", "basic").wer == 0.0
    assert pair_counts("Ünïcödé 🙂", "ünïcödé 🙂", "basic").wer == 0.0


def test_very_long_texts_are_exact_and_fast():
    rnd = random.Random(7)
    vocab = [f"w{i}" for i in range(500)]
    ref_words = [rnd.choice(vocab) for _ in range(20000)]
    hyp_words = list(ref_words)
    for _ in range(800):  # substitutions, deletions, insertions
        k = rnd.randrange(len(hyp_words))
        op = rnd.random()
        if op < 0.4:
            hyp_words[k] = rnd.choice(vocab)
        elif op < 0.7:
            del hyp_words[k]
        else:
            hyp_words.insert(k, rnd.choice(vocab))
    ref, hyp = " ".join(ref_words), " ".join(hyp_words)
    t = time.perf_counter()
    c = pair_counts(ref, hyp, "basic")
    assert time.perf_counter() - t < 30
    o = jiwer.process_words(ref, hyp)
    assert (c.hits, c.substitutions, c.deletions, c.insertions) == (o.hits, o.substitutions, o.deletions, o.insertions)
    assert c.cer == pytest.approx(jiwer.cer(ref, hyp), abs=1e-12)
    assert c.ref_len == 20000


# ---------------------------------------------------------------------------------------------
# Normalisers
# ---------------------------------------------------------------------------------------------


def test_basic_normaliser():
    n = get_normalizer("basic")
    assert n.name == "basic"
    assert n("  Hello,   WORLD!  It's  well-known.\t") == "hello world its well known"
    assert get_normalizer("none")("  A, b ") == "  A, b "
    assert get_normalizer(None).name == "none"


def test_normaliser_composition_and_names():
    n = get_normalizer("basic+nospace")
    assert n.name == "basic+nospace"
    assert n("Hello, World") == "helloworld"
    assert (get_normalizer("lower") + "ws").name == "lower+ws"
    assert get_normalizer(["lower", "punct"]).name == "lower+punct"
    assert normalizer_name("none+lower") == "lower"
    f = get_normalizer(str.upper)
    assert f("ab") == "AB" and f.name == "upper"
    with pytest.raises(ValueError, match="unknown normaliser"):
        get_normalizer("basicc")
    with pytest.raises(TypeError):
        get_normalizer(3)


def test_normalisers_pickle():
    for spec in ["none", "basic", "basic+nospace", "whisper_basic", "whisper_en"]:
        n = get_normalizer(spec)
        m = pickle.loads(pickle.dumps(n))
        assert m.name == n.name


def test_whisper_english_normaliser():
    pytest.importorskip("whisper_normalizer")
    n = get_normalizer("whisper_en")
    assert n.name == "whisper_en"
    assert n("Mr. Smith doesn't have twenty-one colour cards!") == "mister smith does not have 21 color cards"
    c = pair_counts("I have twenty one apples.", "i have 21 apples", "whisper_en")
    assert c.wer == 0.0
    assert pair_counts("I have twenty one apples.", "i have 21 apples", "basic").wer > 0
    assert get_normalizer("whisper_basic")("Héllo, [noise] World!").split() == ["héllo", "world"]


# ---------------------------------------------------------------------------------------------
# Grouped evaluation and report
# ---------------------------------------------------------------------------------------------


def _sample_result() -> WerResult:
    refs = ["the cat sat on the mat", "hello world", "a b c", None, "", "good morning"]
    hyps = ["the cat sat on a mat", "hello word", "a c", "x", "uh", None]
    spk = ["alice", "alice", "bob", "bob", "carol", "carol"]
    return evaluate_pairs(refs, hyps, "basic", groups=[(s,) for s in spk], group_by=["speaker"], top_substitutions=5)


def test_evaluate_pairs_groups_sum_to_overall():
    r = _sample_result()
    assert set(r.groups) == {("alice",), ("bob",), ("carol",)}
    assert ErrorCounts.sum(r.groups.values()) == r.overall
    assert r.groups[("alice",)].substitutions == 2
    assert r.overall.n_null == 2
    assert r.substitutions[0][2] == 1 and ("world", "word", 1) in r.substitutions
    df = r.to_pandas()
    assert list(df["speaker"]) == ["alice", "bob", "carol"]
    assert {"wer", "cer", "mer", "wil", "hits", "n_null"} <= set(df.columns)
    assert r.group_substitutions[("alice",)]


def test_accumulator_tracks_substitutions_per_group():
    acc = Accumulator("basic", substitutions=True)
    acc.add("a b", "a c", "g1")
    acc.add("a b", "a c", "g1")
    acc.add("x", "y", "g2")
    assert acc.subs["g1"] == Counter({("b", "c"): 2})
    assert acc.counts["g2"].substitutions == 1


def test_write_report(tmp_path):
    r = _sample_result()
    paths = write_report(tmp_path / "eval", r, model="whisper-tiny.en", options={"beam_size": 5})
    payload = json.loads((tmp_path / "eval" / "metrics.json").read_text())  # strict JSON
    assert payload["model"] == "whisper-tiny.en"
    assert payload["normalizer"] == "basic"
    assert payload["options"]["beam_size"] == 5
    assert payload["overall"]["wer"] == pytest.approx(r.overall.wer)
    assert payload["overall"]["substitutions"] == r.overall.substitutions
    assert {g["key"]["speaker"] for g in payload["groups"]} == {"alice", "bob", "carol"}
    assert payload["top_substitutions"][0]["count"] >= 1
    md = (tmp_path / "eval" / "report.md").read_text()
    assert "WER" in md and "## Per speaker" in md and "Most frequent substitutions" in md
    assert "| world | word | 1 |" in md
    pytest.importorskip("matplotlib")
    assert [p.name for p in paths["charts"]] == ["wer_by_group.png", "error_breakdown.png"]
    for p in paths["charts"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({p.name})" in md


def test_write_report_handles_nan_and_no_groups(tmp_path):
    r = evaluate_pairs([None], ["a"], "none")
    write_report(tmp_path, r)
    payload = json.loads((tmp_path / "metrics.json").read_text())
    assert payload["overall"]["wer"] is None and payload["overall"]["n_null"] == 1
    assert "n/a" in (tmp_path / "report.md").read_text()


# ---------------------------------------------------------------------------------------------
# Diacritics, word alignment per span, bootstrap intervals (the accuracy benchmark's tools)
# ---------------------------------------------------------------------------------------------


def test_nodiacritics_normaliser_composes_after_whisper_basic():
    n = get_normalizer("whisper_basic+nodiacritics")
    assert n.name == "whisper_basic+nodiacritics"
    assert n("Trés para expulsar al último usuario. ¿Qué? Año") == "tres para expulsar al ultimo usuario que ano"
    assert get_normalizer("nodiacritics")("ça Ünï ﬁn") == "ca Uni fin"  # NFKD also splits the ligature
    assert pickle.loads(pickle.dumps(n))("é") == "e"
    # accents are errors without it, not with it
    assert pair_counts("numero", "número", "whisper_basic").substitutions == 1
    assert pair_counts("numero", "número", n).substitutions == 0


@settings(max_examples=200, deadline=None)
@given(texts, texts, st.lists(st.integers(0, 8), max_size=4))
def test_word_alignment_spans_add_up_to_the_pair_counts(ref, hyp, cuts):
    from sparkasr.evaluation import word_alignment

    al = word_alignment(ref, hyp, "none")
    c = pair_counts(ref, hyp, "none")
    assert (al.ops.count("hit"), al.ops.count("sub"), al.ops.count("del")) == (c.hits, c.substitutions, c.deletions)
    assert sum(len(x) for x in al.inserted) == c.insertions
    n = len(al.reference)
    bounds = sorted({0, n, *[min(k, n) for k in cuts]})
    spans = [al.span(a, b) for a, b in zip(bounds, bounds[1:])] or [al.span(0, 0)]
    total = ErrorCounts.sum(spans)
    assert (total.hits, total.substitutions, total.deletions, total.insertions) == (
        c.hits,
        c.substitutions,
        c.deletions,
        c.insertions,
    )


def test_word_alignment_attributes_a_repeated_part_to_it():
    from sparkasr.evaluation import word_alignment

    al = word_alignment("one two three four five", "one two three four three four five")
    assert al.ops == ["hit"] * 5 and al.inserted[4] == ["three", "four"]
    assert al.span(2, 4).insertions == 2 and al.span(4, 5).insertions == 0 and al.span(0, 2).insertions == 0


def test_bootstrap_interval_by_enumeration_and_pairing():
    from sparkasr.evaluation import bootstrap_difference, bootstrap_rate

    a = ErrorCounts(hits=9, substitutions=1, n_rows=1)  # 0.1
    b = ErrorCounts(hits=7, substitutions=3, n_rows=1)  # 0.3
    # two units: the resamples are (a, a), (a, b), (b, b) with probabilities 1/4, 1/2, 1/4
    iv = bootstrap_rate([a, b], resamples=4000, seed=1)
    assert iv.estimate == pytest.approx(0.2) and (iv.low, iv.high) == pytest.approx((0.1, 0.3))
    assert iv.contains(0.2) and iv.units == 2 and iv.resamples == 4000
    assert bootstrap_rate([a, b], resamples=4000, seed=1) == iv  # seeded: the same interval
    # one unit: no spread
    one = bootstrap_rate([a], resamples=100)
    assert (one.low, one.estimate, one.high) == pytest.approx((0.1, 0.1, 0.1))
    # the same system against itself: exactly zero, whatever the resample
    units = [ErrorCounts(hits=10 - k, substitutions=k, n_rows=1) for k in range(6)]
    same = bootstrap_difference(units, units)
    assert (same.low, same.estimate, same.high) == (0.0, 0.0, 0.0)
    # one more error in every unit: +0.1 in every resample, so the interval excludes 0
    worse = [ErrorCounts(hits=c.hits - 1, substitutions=c.substitutions + 1, n_rows=1) for c in units]
    d = bootstrap_difference(worse, units)
    assert d.estimate == pytest.approx(0.1) and d.low == pytest.approx(0.1) and d.high == pytest.approx(0.1)
    # unpaired noise: a difference that only some units show has an interval around it
    mixed = units[:3] + worse[3:]
    m = bootstrap_difference(mixed, units)
    assert m.low < m.estimate < m.high and m.low >= 0.0
    with pytest.raises(ValueError, match="same references"):
        bootstrap_difference(units, [ErrorCounts(hits=1, n_rows=1)] * 6)
    with pytest.raises(ValueError, match="cer"):
        bootstrap_rate(units, "mer")
    cer = bootstrap_rate([pair_counts("abc", "abd"), pair_counts("abcd", "abcd")], "cer", resamples=500)
    assert cer.estimate == pytest.approx(1 / 7)

#!/usr/bin/env bash
# Fetch the evaluation corpus (the sets in bench/eval_sources.tsv: Debian's Asterisk prompts,
# en + es for speech recognition, plus it, ru and Colombian es voices for diarization; ~113 min of 8-kHz
# speech, 80 MB) into a cache outside the repository, and
# build its manifests and long-form sets (bench/eval_corpus.py).
#   scripts/fetch_eval_corpus.sh      cache: $SPARKASR_EVAL_CORPUS, else ~/.cache/sparkasr/eval-corpus
# Idempotent: packages already in the cache are not downloaded again, so it works offline once it
# has run. Needs `apt-get download` (no root) reaching Debian's archive the first time; when it
# cannot, it says so and exits 3. The audio is never copied into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${SPARKASR_EVAL_CORPUS:-${XDG_CACHE_HOME:-$HOME/.cache}/sparkasr/eval-corpus}"
PY="${PYTHON:-python3}"
[[ -z "${PYTHON:-}" && -x .venv/bin/python ]] && PY=.venv/bin/python
mkdir -p "$CACHE/debs" "$CACHE/tree"

for spec in $("$PY" bench/eval_corpus.py packages); do
  pkg="${spec%%=*}"; ver="${spec#*=}"
  deb="$CACHE/debs/${pkg}_${ver}_all.deb"
  if [[ ! -s "$deb" ]]; then
    command -v apt-get >/dev/null || { echo "fetch_eval_corpus: apt-get is not available: cannot download $spec (Debian/Ubuntu's apt is needed once; then the cache in $CACHE is used)" >&2; exit 3; }
    tmp="$(mktemp -d "$CACHE/debs/.dl.XXXXXX")"
    if ! (cd "$tmp" && apt-get download -q "$spec" >"$tmp/log" 2>&1); then
      why="$(grep '^E:' "$tmp/log" | head -n 2 | tr '\n' ' ')"; [[ -n "$why" ]] || why="$(tail -n 2 "$tmp/log" | tr '\n' ' ')"
      echo "fetch_eval_corpus: cannot download $spec from Debian's archive: $why" >&2
      echo "fetch_eval_corpus: the evaluation corpus needs network access to Debian's archive once (then $CACHE is used offline); if apt says it cannot locate the package, its lists need 'apt-get update' (as root)" >&2
      rm -rf "$tmp"; exit 3
    fi
    mv "$tmp"/*.deb "$deb"; rm -rf "$tmp"
  fi
  stamp="$CACHE/tree/.${pkg}_${ver}.extracted"
  if [[ ! -e "$stamp" ]]; then
    dpkg-deb -x "$deb" "$CACHE/tree" && touch "$stamp"
  fi
done

"$PY" bench/eval_corpus.py build --cache "$CACHE"

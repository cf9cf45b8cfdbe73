#!/usr/bin/env bash
# Fetch the Spark NLP jar and the runtime dependencies its basic annotators need from Maven Central
# into a local cache, and print a comma-separated jar list for `spark.jars` (SPARKASR_TEST_JARS).
#
#   SPARKASR_TEST_JARS="$(scripts/fetch_sparknlp_jar.sh)" pytest tests/test_sparknlp_interop.py
#
# CI's pyspark 3.5 leg (scripts/test_spark35.sh) takes SPARKNLP_VERSION=5.5.3
# SPARKNLP_ARTIFACT=spark-nlp_2.12: the default (7.0.0, Scala 2.13) is not on the Maven Central CI reaches.
#
# The Maven jar of Spark NLP is not an assembly: even Tokenizer needs its transitive dependencies
# (e.g. com.amazonaws:aws-java-sdk-s3 through the Feature serializer), so the script resolves them
# with Maven into one folder. The deep-learning runtimes (TensorFlow, ONNX Runtime, llama.cpp,
# OpenVINO; several hundred MB of native code) and the storage/office back ends are excluded: the
# interop tests use AudioAssembler, DocumentAssembler, SentenceDetector, Tokenizer, Normalizer,
# StopWordsCleaner and LightPipeline only.
# Set SPARKNLP_FULL=1 to keep every dependency.
#
# Idempotent: a finished fetch leaves "$DEST/.complete" and later calls only print the list, with
# no network access (offline after the first fetch). Everything but the result goes to stderr.
#
# Environment (all optional):
#   SPARKNLP_VERSION        default 7.0.0
#   SPARKNLP_ARTIFACT       default spark-nlp_2.13 (Spark 4.0.1+, Scala 2.13; spark-nlp_2.12 for Spark 3.x)
#   SPARKASR_JAR_CACHE      default ${XDG_CACHE_HOME:-$HOME/.cache}/sparkasr/jars
#   SPARKNLP_FETCH_TIMEOUT  seconds for the whole Maven resolution, default 600
#   MAVEN_REPO_URL          optional: a repository whose POM is checked (HTTP HEAD) before resolving;
#                           unset = Maven resolves from its configured repositories (Maven Central by default)
#   SPARKNLP_FULL           1 = do not exclude the heavy optional dependencies
#
# Exit status: 0 printed the jar list; 2 the artifact is not published in the repository (404);
# 3 the fetch failed (network, timeout, no mvn/curl).
set -euo pipefail

VERSION="${SPARKNLP_VERSION:-7.0.0}"
ARTIFACT="${SPARKNLP_ARTIFACT:-spark-nlp_2.13}"
GROUP="com.johnsnowlabs.nlp"
CACHE="${SPARKASR_JAR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sparkasr/jars}"
TIMEOUT="${SPARKNLP_FETCH_TIMEOUT:-600}"
REPO="${MAVEN_REPO_URL:-}"
SUFFIX=""
[ "${SPARKNLP_FULL:-0}" = "1" ] && SUFFIX="-full"
DEST="$CACHE/$ARTIFACT-$VERSION$SUFFIX"
SCALA_BIN="${ARTIFACT##*_}"   # 2.13 / 2.12

log() { echo "fetch_sparknlp_jar: $*" >&2; }

print_jars() {
    # Spark NLP's own jar first, then its dependencies, comma-separated (spark.jars syntax).
    local main="$DEST/$ARTIFACT-$VERSION.jar"
    { echo "$main"; find "$DEST" -maxdepth 1 -name '*.jar' ! -path "$main" | LC_ALL=C sort; } | paste -sd, -
}

if [ -f "$DEST/.complete" ] && [ -f "$DEST/$ARTIFACT-$VERSION.jar" ]; then
    print_jars
    exit 0
fi

command -v mvn >/dev/null || { log "mvn (Apache Maven) not found: apt-get install maven"; exit 3; }

# 1. Is it published at all? With MAVEN_REPO_URL, a cheap HEAD on the POM answers in about a second.
if [ -n "$REPO" ]; then
    command -v curl >/dev/null || { log "curl not found"; exit 3; }
    POM_URL="$REPO/${GROUP//.//}/$ARTIFACT/$VERSION/$ARTIFACT-$VERSION.pom"
    code="$(curl -sS -o /dev/null -I -L --connect-timeout 20 --max-time 60 -w '%{http_code}' "$POM_URL" || true)"
    case "$code" in
        200) ;;
        404|410)
            log "$GROUP:$ARTIFACT:$VERSION is not published in $REPO (HTTP $code for $POM_URL)"
            exit 2 ;;
        *)
            log "cannot reach $REPO (HTTP status '${code:-none}' for $POM_URL)"
            exit 3 ;;
    esac
fi

# 2. Resolve the jar and its runtime dependencies with Maven into a temp folder, then move it in place.
EXCLUSIONS=""
if [ "${SPARKNLP_FULL:-0}" != "1" ]; then
    for ga in \
        "com.johnsnowlabs.nlp:tensorflow-cpu_$SCALA_BIN" \
        "com.johnsnowlabs.nlp:tensorflow-gpu_$SCALA_BIN" \
        "com.microsoft.onnxruntime:onnxruntime" \
        "com.microsoft.onnxruntime:onnxruntime_gpu" \
        "com.johnsnowlabs.nlp:jsl-llamacpp-cpu_$SCALA_BIN" \
        "com.johnsnowlabs.nlp:jsl-openvino-cpu_$SCALA_BIN" \
        "org.rocksdb:rocksdbjni" \
        "com.google.cloud:google-cloud-storage" \
        "org.apache.poi:poi-ooxml" \
        "org.apache.poi:poi-scratchpad"; do
        EXCLUSIONS+="<exclusion><groupId>${ga%%:*}</groupId><artifactId>${ga#*:}</artifactId></exclusion>"
    done
fi
# Spark brings its own Scala; never put a second scala-library on the classpath.
EXCLUSIONS+="<exclusion><groupId>org.scala-lang</groupId><artifactId>*</artifactId></exclusion>"

mkdir -p "$CACHE"
WORK="$(mktemp -d "$CACHE/.fetch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sparkasr</groupId>
  <artifactId>sparknlp-fetch</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>$GROUP</groupId>
      <artifactId>$ARTIFACT</artifactId>
      <version>$VERSION</version>
      <exclusions>$EXCLUSIONS</exclusions>
    </dependency>
  </dependencies>
</project>
POM

log "resolving $GROUP:$ARTIFACT:$VERSION with Maven into $DEST (timeout ${TIMEOUT}s)"
start=$(date +%s)
if ! timeout "$TIMEOUT" mvn -B -q -f "$WORK/pom.xml" \
        org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$WORK/jars" >"$WORK/mvn.log" 2>&1; then
    tail -20 "$WORK/mvn.log" >&2
    if grep -q -E "Could not find artifact|was not found in" "$WORK/mvn.log"; then
        log "$GROUP:$ARTIFACT:$VERSION is not published in the Maven repositories this machine reaches"
        exit 2
    fi
    log "Maven resolution failed or timed out"
    exit 3
fi
[ -f "$WORK/jars/$ARTIFACT-$VERSION.jar" ] || { log "Maven finished without $ARTIFACT-$VERSION.jar"; exit 3; }
touch "$WORK/jars/.complete"
rm -rf "$DEST"
mv "$WORK/jars" "$DEST"
log "done in $(( $(date +%s) - start ))s: $(find "$DEST" -name '*.jar' | wc -l) jars, $(du -sh "$DEST" | cut -f1)"
print_jars

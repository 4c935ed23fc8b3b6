#!/usr/bin/env bash
# Fetches the Kafka broker the end-to-end tests run against
# (tests/e2e/servers/kafka.mjs): its runtime jars, from Maven Central, listed
# by scripts/kafka/pom.xml, copied into build/kafka/<version>/libs. Once:
# when that directory is complete the script only says so (no Maven run).
# Needs Java 17 and Maven (scripts/install-deps.sh installs them).
#
#   scripts/fetch-kafka.sh                       # build/kafka/4.4.0/libs
#   FORK_KAFKA_VERSION=4.1.1 scripts/fetch-kafka.sh
set -euo pipefail
cd "$(dirname "$0")/.."

version="${FORK_KAFKA_VERSION:-4.4.0}"
dest="build/kafka/$version/libs"
if [[ -f "$dest/.complete" ]]; then
  echo "fetch-kafka: Kafka $version present in $dest"
  exit 0
fi

for tool in java mvn; do
  if ! command -v "$tool" >/dev/null; then
    echo "fetch-kafka: $tool not found (scripts/install-deps.sh installs openjdk-17-jre-headless and maven)" >&2
    exit 1
  fi
done

start=$(date +%s)
tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -Dstyle.color=never -f scripts/kafka/pom.xml dependency:copy-dependencies \
  -Dkafka.version="$version" -DincludeScope=runtime -DoutputDirectory="$PWD/$tmp"
if ! compgen -G "$tmp/kafka_2.13-$version.jar" >/dev/null; then
  echo "fetch-kafka: Maven copied no kafka_2.13-$version.jar into $tmp" >&2
  exit 1
fi
touch "$tmp/.complete"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "fetch-kafka: Kafka $version, $(ls "$dest" | wc -l) jars in $dest ($(( $(date +%s) - start )) s)"

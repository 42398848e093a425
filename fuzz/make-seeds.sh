#!/bin/sh
# Builds fuzz/seeds/rundown (not kept in git): sequences of documents separated by NUL
# bytes, each a roCreate from examples-messages/profile2 followed by one edit, and one
# with every edit in turn.
set -eu
cd "$(dirname "$0")/.."
src=examples-messages/profile2
out=fuzz/seeds/rundown
mkdir -p "$out"
all="$out/all-edits"
cat "$src/roCreate.xml" > "$all"
for f in "$src"/ro*.xml; do
    name=$(basename "$f" .xml)
    case "$name" in roCreate-large) continue ;; esac
    { cat "$src/roCreate.xml"; printf '\0'; cat "$f"; } > "$out/$name"
    { printf '\0'; cat "$f"; } >> "$all"
done
echo "$(ls "$out" | wc -l) seeds in $out"

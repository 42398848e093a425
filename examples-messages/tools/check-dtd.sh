#!/usr/bin/env bash
# Validate the example messages against dtd/mos-2.8.1.dtd.
#
#   profile0/ .. profile5/  every file must be valid against the DTD (xmllint --dtdvalid) and
#                           have spec value formats (tools/check-values.py reports nothing).
#   off-spec/               every file must be well-formed with a <mos> root and be listed in
#                           off-spec/expected-deviations.txt with known kind names; it must either
#                           FAIL the DTD, or pass it and break a value format. The value kinds
#                           found by check-values.py must be among the expected kinds, and for a
#                           DTD-valid file they must be exactly the expected kinds.
#
# Needs xmllint (apt-get install libxml2-utils) and python3. Exit status 0 when all checks pass.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
examples="$(dirname "$here")"
root="$(dirname "$examples")"
dtd="$root/dtd/mos-2.8.1.dtd"
values="$here/check-values.py"
expected="$examples/off-spec/expected-deviations.txt"
kinds=" missing-message-id empty-message-id invalid-message-id empty-mos-id empty-time nonstandard-time invalid-time overlong-string out-of-order missing-element enum-case invalid-value nonstandard-number "

command -v xmllint >/dev/null || { echo "xmllint not found (apt-get install libxml2-utils)" >&2; exit 2; }
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# value kinds reported by check-values.py for one file, as a sorted space-separated list
value_kinds() { python3 "$values" "$1" | sed 's/^[^:]*: *//' | tr -d ' ' | tr ',' '\n' | sed '/^$/d' | sort | tr '\n' ' '; }

count=0
for f in "$examples"/profile[0-5]/*.xml; do
    count=$((count + 1))
    rel="${f#"$examples"/}"
    if ! out="$(xmllint --noout --dtdvalid "$dtd" "$f" 2>&1)"; then
        fail "$rel: not valid against the DTD"; echo "$out" | head -5
        continue
    fi
    found="$(value_kinds "$f")"
    [ -z "$found" ] || fail "$rel: value format deviations: $found"
done
echo "profile0..profile5: $count files checked"

count=0
for f in "$examples"/off-spec/*.xml; do
    count=$((count + 1))
    name="$(basename "$f")"
    if ! xmllint --noout "$f" 2>/dev/null; then fail "off-spec/$name: not well-formed XML"; continue; fi
    [ "$(xmllint --xpath 'name(/*)' "$f" 2>/dev/null)" = "mos" ] || { fail "off-spec/$name: root is not <mos>"; continue; }
    line="$(grep -E "^$name:" "$expected" || true)"
    [ -n "$line" ] || { fail "off-spec/$name: not listed in expected-deviations.txt"; continue; }
    want="$(echo "${line#*:}" | tr -d ' ' | tr ',' '\n' | sed '/^$/d' | sort | tr '\n' ' ')"
    [ -n "$want" ] || fail "off-spec/$name: no deviation kinds listed"
    for k in $want; do
        case "$kinds" in *" $k "*) ;; *) fail "off-spec/$name: unknown kind '$k'";; esac
    done
    found="$(value_kinds "$f")"
    for k in $found; do
        case " $want " in *" $k "*) ;; *) fail "off-spec/$name: value check found '$k', not expected";; esac
    done
    if xmllint --noout --dtdvalid "$dtd" "$f" >/dev/null 2>&1; then
        if [ -z "$found" ]; then
            fail "off-spec/$name: valid against the DTD and no value format broken"
        elif [ "$found" != "$want" ]; then
            fail "off-spec/$name: DTD-valid; value kinds '$found' differ from expected '$want'"
        else
            echo "ok   off-spec/$name: DTD-valid, breaks value format: $found"
        fi
    else
        echo "ok   off-spec/$name: fails the DTD as expected (expected kinds: $want)"
    fi
done
# every listed file exists
grep -E '^[^#].*\.xml:' "$expected" | cut -d: -f1 | while read -r name; do
    [ -f "$examples/off-spec/$name" ] || echo "FAIL expected-deviations.txt lists missing file $name"
done | grep . && failures=$((failures + 1))
echo "off-spec: $count files checked"

if [ "$failures" -gt 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "all checks passed"

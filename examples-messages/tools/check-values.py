#!/usr/bin/env python3
"""Check the value formats of MOS messages that a DTD cannot check.

Prints one line per file: "FILE: kind, kind" (empty list when the values are fine), using the
deviation kind names of examples-messages/off-spec/expected-deviations.txt. Only value-level
kinds are detected here (times, messageID, mosID/ncsID, String128 lengths, enum spellings,
numbers, an empty roID); structure (order, missing children) is left to the DTD. Content inside
mosPayload is opaque to MOS and is skipped. Python 3 standard library only.

    python3 examples-messages/tools/check-values.py FILE...
"""

import re
import sys
import xml.etree.ElementTree as ET

TIME_ELEMENTS = {"time", "opTime", "created", "changed", "roEdStart", "roEventTime"}
SPEC_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(,\d{3})?(Z|[+-]\d\d:\d\d)?$")
LOOSE_TIME = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d([.,]\d+)?(Z|[+-]\d\d:?\d\d)?$")
STRING128 = {
    "mosID", "ncsID", "roID", "roSlug", "roChannel", "storyID", "storySlug", "storyNum", "itemID",
    "itemSlug", "itemChannel", "objID", "objSlug", "objGroup", "createdBy", "changedBy", "macroIn",
    "macroOut", "roStatus", "statusDescription", "generalSearch", "queryID", "listReturnStatus",
    "manufacturer", "model", "hwRev", "swRev", "SN", "ID", "mosRev", "controlSlug", "mosPlugInID",
}
NUMBERS = {"objTB", "objDur", "objRev", "itemEdStart", "itemEdDur", "itemUserTimingDur", "pause",
           "listReturnStart", "listReturnEnd", "listReturnTotal"}
MESSAGE_ID = re.compile(r"^(\d+|0?[xX][0-9A-Fa-f]+)$")
NUMBER = re.compile(r"^(\d+(\.\d+)?|0?[xX][0-9A-Fa-f]+)$")
OBJECT_STATUS = {"NEW", "UPDATED", "MOVED", "BUSY", "DELETED", "NCS CTRL", "MANUAL CTRL", "READY",
                 "NOT READY", "PLAY", "STOP", "DISCONNECTED"}
ENUMS = {
    "mosScope": {"OBJECT", "STORY", "PLAYLIST"},
    "roAir": {"READY", "NOT READY"},
    "objAir": {"READY", "NOT READY"},
    "objType": {"STILL", "AUDIO", "VIDEO"},
    "command": {"READY", "EXECUTE", "PAUSE", "STOP", "SIGNAL"},
    "mode": {"MODALDIALOG", "MODELESS", "CONTAINED", "TOOLBAR"},
    "mosProfile": {"YES", "NO"},
}
ENUMS.update({"mosProfile%d" % n: {"YES", "NO"} for n in range(8)})
# status is an enum only in these parents (roAck's per-item status is free text)
STATUS_PARENTS = {"mosAck": {"ACK", "NACK"}, "mosObj": OBJECT_STATUS, "roStat": OBJECT_STATUS,
                  "roItemStat": OBJECT_STATUS, "roElementStat": OBJECT_STATUS}


def number_value(text):
    if NUMBER.match(text):
        return None
    t = text.strip()
    if NUMBER.match(t) or NUMBER.match(t.replace(",", ".")):
        return "nonstandard-number"
    return "invalid-value"


def check(root):
    kinds = []

    def add(kind):
        if kind not in kinds:
            kinds.append(kind)

    if root.tag != "mos":
        add("invalid-value")
        return kinds
    header = {child.tag: child for child in root if child.tag in ("mosID", "ncsID", "messageID")}
    mid = header.get("messageID")
    if mid is None:
        add("missing-message-id")
    else:
        text = (mid.text or "").strip()
        if not text:
            add("empty-message-id")
        elif not MESSAGE_ID.match(text):
            add("invalid-message-id")
        else:
            hex_digits = text.lstrip("0").lstrip("xX") if text[:1] in "xX" or text[:2] in ("0x", "0X") else None
            value = int(hex_digits or "0", 16) if hex_digits is not None else int(text)
            if not 1 <= value <= 2**31 - 1:
                add("invalid-message-id")
    for name in ("mosID", "ncsID"):
        if name in header and not (header[name].text or "").strip():
            add("empty-mos-id")

    def walk(element, parent):
        if element.tag == "mosPayload":
            return
        text = element.text or ""
        tag = element.tag
        if tag in TIME_ELEMENTS and len(element) == 0:
            if not text.strip():
                add("empty-time")
            elif not SPEC_TIME.match(text):
                add("nonstandard-time" if LOOSE_TIME.match(text.strip()) else "invalid-time")
        if tag in STRING128 and len(text) > 128:
            add("overlong-string")
        if tag in NUMBERS and text != "":
            kind = number_value(text)
            if kind:
                add(kind)
        allowed = ENUMS.get(tag)
        if tag == "status" and parent is not None:
            allowed = STATUS_PARENTS.get(parent.tag)
        if allowed and text.strip():
            if text not in allowed:
                add("enum-case" if text.strip().upper() in allowed else "invalid-value")
        if tag == "roID" and not text.strip():
            add("missing-element")
        for child in element:
            walk(child, element)

    for child in root:
        walk(child, root)
    return kinds


def main(paths):
    status = 0
    for path in paths:
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as err:
            print("%s: not well-formed: %s" % (path, err))
            status = 1
            continue
        print("%s: %s" % (path, ", ".join(check(root))))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

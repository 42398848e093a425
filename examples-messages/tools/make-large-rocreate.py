#!/usr/bin/env python3
"""Generate examples-messages/profile2/roCreate-large.xml.

A large, realistic roCreate for load and parser tests: by default 300 stories with 3 to 6 items
each, news-style slugs (some Norwegian), item channels such as CAM1, VT1 and STUDIO-A, and objIDs
that look like NMOS sender UUIDs. Output is pretty-printed with CR/LF and tabs, UTF-8, no XML
declaration, no DOCTYPE, and valid against dtd/mos-2.8.1.dtd.

The output is deterministic: every choice is derived from a SHA-256 of the story/item number, and
UUIDs are name-based (uuid5), so running the script again gives byte-identical output.
Python 3 standard library only.

    python3 examples-messages/tools/make-large-rocreate.py            # writes the default file
    python3 examples-messages/tools/make-large-rocreate.py --stories 50 --out /tmp/ro.xml
"""

import argparse
import hashlib
import pathlib
import uuid

GATEWAY = "nmos.gateway.mos"
NCS = "ENPS.NCS"
GFX_DEVICE = "VIZ.GFX.MOS"
PAYLOAD_SCHEMA = "http://nmos-gateway.local/mos/schema/1"
NAMESPACE = uuid.UUID("6f2d9a52-4c1e-4b7a-9e35-0a8d1c2b3e4f")

# channel -> (destination of the gateway payload, item slug prefix)
CHANNELS = [
    ("CAM1", "CAM1"), ("CAM2", "CAM2"), ("CAM3", "CAM3"), ("VT1", "VT1"), ("VT2", "VT2"),
    ("STUDIO-A", "STUDIO-A"), ("STUDIO-B", "STUDIO-B"), ("REMOTE1", "REMOTE"), ("GFX1", "GFX"),
]
SHOTS = {
    "CAM": ["two-shot", "wide", "close", "reverse", "over-shoulder", "tag"],
    "VT": ["package", "sound bite", "VO", "teaser", "archive"],
    "STUDIO": ["switch to studio", "interview", "panel"],
    "REMOTE": ["live hit", "live interview", "crossover"],
    "GFX": ["lower third", "locator", "full-frame graphic", "results board"],
}
TOPICS = [
    "ELECTION-RESULTS", "STORM-NORDLAND", "BUDGET-DEAL", "OIL-PRICE", "FERRY-STRIKE",
    "HOSPITAL-QUEUES", "FOOTBALL-ELITESERIEN", "SKI-WORLDCUP", "HOUSING-MARKET", "WOLF-CULL",
    "NATO-SUMMIT", "TECH-LAYOFFS", "CLIMATE-TALKS", "ROAD-TOLLS", "SCHOOL-STRIKE",
    "VÆRET-I-MORGEN", "STORTINGET-DEBATT", "FJELLREDNING-LOFOTEN", "KRONEKURSEN", "NORDLYS-TROMSØ",
    "MARKETS", "TRAFFIC", "KICKER", "ARTS-OPERA", "HEALTH-FLU",
]
FORMS = ["LEAD", "VO", "SOT", "PKG", "LIVE", "VO/SOT", "TAG", "DONUT", "READER", "WRAP"]


def pick(key, n):
    """Deterministic number in 0..n-1 from a text key."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n


def sender_uuid(channel, n):
    return str(uuid.uuid5(NAMESPACE, "sender/%s/%d" % (channel, n)))


def esc(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Writer:
    def __init__(self):
        self.lines = []
        self.depth = 0

    def leaf(self, name, value):
        self.lines.append("\t" * self.depth + "<%s>%s</%s>" % (name, esc(value), name))

    def open(self, name):
        self.lines.append("\t" * self.depth + "<%s>" % name)
        self.depth += 1

    def close(self, name):
        self.depth -= 1
        self.lines.append("\t" * self.depth + "</%s>" % name)

    def text(self):
        return "\r\n".join(self.lines) + "\r\n"


def gateway_mem(w, scope, destination, sender=None):
    w.open("mosExternalMetadata")
    w.leaf("mosScope", scope)
    w.leaf("mosSchema", PAYLOAD_SCHEMA)
    w.open("mosPayload")
    w.open("nmosGateway")
    w.leaf("destination", destination)
    if sender:
        w.leaf("senderId", sender)
    w.close("nmosGateway")
    w.close("mosPayload")
    w.close("mosExternalMetadata")


def build(stories):
    w = Writer()
    w.open("mos")
    w.leaf("mosID", GATEWAY)
    w.leaf("ncsID", NCS)
    w.leaf("messageID", "20001")
    w.open("roCreate")
    w.leaf("roID", "RO-MARATHON-2026-11-25")
    w.leaf("roSlug", "Election night marathon 18:00–06:00")
    w.leaf("roChannel", "STUDIO-A")
    w.leaf("roEdStart", "2026-11-25T18:00:00,000+01:00")
    w.leaf("roEdDur", "12:00:00")
    w.leaf("roTrigger", "TIMED")
    gateway_mem(w, "PLAYLIST", "STUDIO-A-PGM")
    for s in range(1, stories + 1):
        topic = TOPICS[pick("topic/%d" % s, len(TOPICS))]
        form = FORMS[pick("form/%d" % s, len(FORMS))]
        w.open("story")
        w.leaf("storyID", "S-%05d" % s)
        w.leaf("storySlug", "%s/%s" % (topic, form))
        w.leaf("storyNum", "%s%02d" % ("ABCDEFGHJKLMNOPQRSTU"[(s - 1) // 15], (s - 1) % 15 + 1))
        if s % 10 == 0:
            gateway_mem(w, "STORY", "STUDIO-A-PGM")
        for i in range(1, 3 + pick("items/%d" % s, 4) + 1):
            key = "%d/%d" % (s, i)
            channel, prefix = CHANNELS[pick("channel/" + key, len(CHANNELS))]
            shots = SHOTS[channel.rstrip("0123456789").split("-")[0]]
            shot = shots[pick("shot/" + key, len(shots))]
            sender = sender_uuid(channel, pick("sender/" + key, 2) + 1)
            w.open("item")
            w.leaf("itemID", str(i))
            w.leaf("itemSlug", "%s %s" % (prefix, shot))
            w.leaf("objID", sender)
            w.leaf("mosID", GFX_DEVICE if channel == "GFX1" else GATEWAY)
            w.leaf("itemChannel", channel)
            if channel.startswith("VT"):
                w.leaf("itemEdStart", str(50 * pick("in/" + key, 10)))
                w.leaf("itemEdDur", str(50 * (15 + pick("dur/" + key, 150))))
                w.leaf("itemTrigger", "CHAINED -10" if i > 1 else "MANUAL")
            elif channel.startswith("REMOTE"):
                w.leaf("itemEdDur", str(50 * (60 + pick("dur/" + key, 240))))
                w.leaf("itemUserTimingDur", str(50 * 180))
            if channel.startswith("REMOTE") or (channel.startswith("STUDIO") and i == 1):
                gateway_mem(w, "PLAYLIST", channel + "-PGM", sender)
            w.close("item")
        w.close("story")
    w.close("roCreate")
    w.close("mos")
    return w.text()


def main():
    here = pathlib.Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=300)
    parser.add_argument("--out", type=pathlib.Path, default=here.parent / "profile2" / "roCreate-large.xml")
    args = parser.parse_args()
    data = build(args.stories)
    args.out.write_bytes(data.encode("utf-8"))
    print("wrote %s (%d stories, %d bytes)" % (args.out, args.stories, len(data.encode("utf-8"))))


if __name__ == "__main__":
    main()

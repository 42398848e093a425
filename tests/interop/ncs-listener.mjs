// Interoperability check, the way back: @mos-connection/connector plays the newsroom system (NCS)
// and *listens* for the gateway's own connections (`acceptsConnections: true`), so that it
// receives and parses the messages the gateway originates: mosListAll, mosObj NEW, statuses
// (roElementStat, or roItemStat/roStat) and heartbeats; and it answers the gateway's
// resynchronisation on connect (`resync_on_connect`: roReqAll, then roReq for each running
// order) with its own copy of a running order, which the gateway then holds.
//
// The connector routes a message arriving on its listening ports to the MosDevice registered
// for the message's mosID/ncsID pair. Its only way to register one is to connect out, so, as in
// ncs.mjs, it is given the gateway's mosID as its own and connects to the gateway as the NCS
// (mosID = the gateway, ncsID = the NCS); that device then also receives what the gateway sends
// to the listening ports (its envelope carries the same pair).
//
// Usage:
//   node ncs-listener.mjs --host 127.0.0.1 --lower 10540 --upper 10541 \
//        --listen-lower 10550 --listen-upper 10551 --listen-query 10552 \
//        --mos-id nmos.gateway.mos --ncs-id ENPS.NCS --statuses roElementStat \
//        --objects '[{"id":"CAM-1","slug":"Camera one","type":"VIDEO","group":"Studio A"}]'
// --lower/--upper: the gateway's ports; --listen-*: where the connector listens (the
// gateway's [[ncs]] lower_port/upper_port; the connector always opens a query port too);
// --statuses: the gateway's `status_messages` for this NCS; --objects: the gateway's [[object]]
// tables (id, slug, type, and optionally group, dur = objDur, tb = objTB), in catalogue order.
// NCS_DEBUG=1 writes every raw message to stderr.
//
// Output: one JSON line per step on stdout, {"step": ..., "ok": true|false, "detail": ...}.
// The line with step "await statuses" tells the driving test that the running order exists:
// it then sends, through the gateway's status API and in this order, item I11 PLAY (objID
// OBJ-I11, channel CAM1), item I12 NOT READY "placeholder not bound", story S1 READY (only
// roElementStat can say that) and the running order READY. Exit status 0 only when every step
// passed; the script always exits (each step has a timeout, and a watchdog ends the run).

import { parseArgs } from 'node:util';
import connector from '@mos-connection/connector';

const { MosConnection, getMosTypes, xml2js } = connector;

const STEP_TIMEOUT_MS = 8000;
const RUN_TIMEOUT_MS = 55000;
const RO_ID = 'INTEROP.RO.STATUS';
/** The running order the connector, as the NCS, holds and gives the gateway on resync. */
const NCS_RO_ID = 'INTEROP.RO.NCS';

// ---------------------------------------------------------------------------------------------
// Options

const { values: args } = parseArgs({
  options: {
    host: { type: 'string' },
    lower: { type: 'string' },
    upper: { type: 'string' },
    'listen-lower': { type: 'string' },
    'listen-upper': { type: 'string' },
    'listen-query': { type: 'string' },
    'mos-id': { type: 'string' },
    'ncs-id': { type: 'string' },
    statuses: { type: 'string' },
    objects: { type: 'string' },
  },
});

const opt = {
  host: args.host ?? '127.0.0.1',
  lower: Number(args.lower ?? 10540),
  upper: Number(args.upper ?? 10541),
  listen: {
    lower: Number(args['listen-lower'] ?? 10550),
    upper: Number(args['listen-upper'] ?? 10551),
    query: Number(args['listen-query'] ?? 10552),
  },
  mosId: args['mos-id'] ?? 'nmos.gateway.mos',
  ncsId: args['ncs-id'] ?? 'ENPS.NCS',
  statuses: args.statuses ?? 'roElementStat',
  objects: JSON.parse(args.objects ?? '[]'),
};
const debug = process.env.NCS_DEBUG === '1';

// ---------------------------------------------------------------------------------------------
// Reporting

let failures = 0;

function report(step, ok, detail) {
  if (!ok) failures += 1;
  process.stdout.write(JSON.stringify({ step, ok, detail }) + '\n');
}

function withTimeout(promise, ms, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

async function step(name, fn, ms = STEP_TIMEOUT_MS) {
  try {
    const detail = await withTimeout(Promise.resolve().then(fn), ms, name);
    report(name, true, detail ?? null);
    return true;
  } catch (e) {
    report(name, false, e instanceof Error ? e.message : String(e));
    return false;
  }
}

/** Waits until `check()` returns something other than undefined; returns it. */
async function until(check) {
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

const watchdog = setTimeout(() => {
  report('watchdog', false, `run not finished within ${RUN_TIMEOUT_MS} ms`);
  process.exit(2);
}, RUN_TIMEOUT_MS);

// ---------------------------------------------------------------------------------------------
// MOS values

const mosTypes = getMosTypes(true);
const str = (s) => mosTypes.mosString128.create(s);
const text = (v) => {
  if (v === undefined || v === null) return '';
  if (mosTypes.mosString128.is(v)) return mosTypes.mosString128.stringify(v);
  if (typeof v === 'object' && 'text' in v) return String(v.text);
  return String(v);
};
const compact = (s) => String(s ?? '').replace(/\s+/g, ' ').trim();

function item(id) {
  return { ID: str(id), Slug: str(`Item ${id}`), ObjectID: str(`OBJ-${id}`), MOSID: opt.mosId };
}

/** The NCS's copy of NCS_RO_ID (roListAll, then roList on resync). */
const NCS_RO = {
  ID: str(NCS_RO_ID),
  Slug: str('Held by the NCS'),
  Stories: [
    { ID: str('N1'), Slug: str('Story N1'), Items: ['N11', 'N12'].map(item) },
    { ID: str('N2'), Slug: str('Story N2'), Items: [] },
  ],
};
const NCS_RO_SHAPE = 'N1(N11 N12) N2()';

/** Stories and items of a running order as "S1(I1 I2) S2()". */
function shape(ro) {
  return (ro?.Stories ?? [])
    .map((s) => `${text(s.ID)}(${(s.Items ?? []).map((i) => text(i.ID)).join(' ')})`)
    .join(' ');
}

// ---------------------------------------------------------------------------------------------
// What arrives

/** Raw messages the connector read on its listening ports (the gateway's outbound links). */
const inbound = [];
/** Replies the connector wrote on those sockets. */
const inboundReplies = [];
/** Connections the gateway opened to the listening ports. */
let gatewayConnections = 0;
/** Replies to the connector's own heartbeats on its connection to the gateway. */
let heartbeatReplies = 0;
/** Each onMOSObjects call: the parsed objects. */
const objectBatches = [];
/** Each onItemStatus / onStoryStatus / onRunningOrderStatus call. */
const statuses = [];

const messageName = (raw) => /<mos>[\s\S]*?<messageID>[^<]*<\/messageID>\s*<(\w+)/.exec(raw)?.[1] ?? '?';

function onRaw(source, type, message) {
  if (debug) process.stderr.write(`[${source} ${type}] ${message}\n`);
  if (source === 'incoming' && type === 'recieved') {
    // One TCP read, which may hold several messages (or, for big ones, part of one).
    for (const m of message.match(/<mos>[\s\S]*?<\/mos>/g) ?? [message]) inbound.push(m);
  } else if (source.startsWith('incoming_') && type === 'newConnection') {
    gatewayConnections += 1;
  } else if (source.startsWith('incoming_') && type === 'sent') {
    inboundReplies.push(message);
  } else if (source === 'primary' && type === 'recieved' && /<heartbeat>/.test(message)) {
    heartbeatReplies += 1;
  }
}

// The device's callbacks. In strict mode the connector wants every callback of the declared
// profiles (it cannot be told it is the NCS); the ones for messages the gateway must not send
// refuse and count as a failed step.
const UNEXPECTED = [
  'onRequestMachineInfo',
  'onRequestMOSObject',
  'onRequestAllMOSObjects',
  'onCreateRunningOrder',
  'onReplaceRunningOrder',
  'onDeleteRunningOrder',
  'onMetadataReplace',
  'onReadyToAir',
  'onROInsertStories',
  'onROInsertItems',
  'onROReplaceStories',
  'onROReplaceItems',
  'onROMoveStories',
  'onROMoveItems',
  'onRODeleteStories',
  'onRODeleteItems',
  'onROSwapStories',
  'onROSwapItems',
  'onRunningOrderStory',
];

/** roIDs the gateway asked for with roReq, in order. */
const roReqs = [];

function registerCallbacks(device) {
  // The gateway's resynchronisation: every running order the NCS holds, then each in full.
  device.onRequestAllRunningOrders(async () => [NCS_RO]);
  device.onRequestRunningOrder(async (roId) => {
    roReqs.push(text(roId));
    return text(roId) === NCS_RO_ID ? NCS_RO : null;
  });
  for (const name of UNEXPECTED) {
    device[name](async () => {
      report(`unexpected ${name}`, false, 'the gateway sent a message an NCS does not receive');
      throw new Error('not expected here');
    });
  }
  device.onMOSObjects(async (objs) => {
    objectBatches.push(objs);
    const first = objs[0];
    return { ID: first?.ID ?? str(''), Revision: first?.Revision ?? 0, Status: 'ACK', Description: str('') };
  });
  const roAck = (ro) => ({ ID: ro, Status: str('OK'), Stories: [] });
  device.onItemStatus(async (s) => {
    statuses.push({ kind: 'ITEM', ...s });
    return roAck(s.RunningOrderId);
  });
  device.onStoryStatus(async (s) => {
    statuses.push({ kind: 'STORY', ...s });
    return roAck(s.RunningOrderId);
  });
  device.onRunningOrderStatus(async (s) => {
    statuses.push({ kind: 'RO', ...s });
    return roAck(s.ID);
  });
}

// ---------------------------------------------------------------------------------------------
// Run

let mos;
let device;

async function finish() {
  clearTimeout(watchdog);
  try {
    if (mos) await withTimeout(mos.dispose(), 3000, 'dispose');
  } catch (e) {
    process.stderr.write(`dispose: ${e instanceof Error ? e.message : e}\n`);
  }
  report('summary', failures === 0, failures === 0 ? 'all steps passed' : `${failures} step(s) failed`);
  process.exit(failures === 0 ? 0 : 1);
}

/** Compares the parsed objects with the expected ones; returns the problems. */
function objectProblems(objs) {
  const problems = [];
  const got = objs.map((o) => text(o.ID));
  const want = opt.objects.map((o) => o.id);
  if (got.join(' ') !== want.join(' ')) problems.push(`objIDs [${got.join(' ')}], expected [${want.join(' ')}]`);
  for (const w of opt.objects) {
    const o = objs.find((x) => text(x.ID) === w.id);
    if (!o) continue;
    const fields = { slug: text(o.Slug), type: text(o.Type), group: text(o.Group), dur: text(o.Duration), tb: text(o.TimeBase) };
    for (const [k, v] of Object.entries(fields)) {
      if (w[k] !== undefined && String(w[k]) !== v) problems.push(`${w.id} ${k} ${JSON.stringify(v)}, expected ${JSON.stringify(String(w[k]))}`);
    }
    if (text(o.AirStatus) !== 'READY') problems.push(`${w.id} objAir ${JSON.stringify(text(o.AirStatus))}`);
  }
  return problems;
}

/** The connector's reply to the inbound message with this messageID, compacted. */
function replyTo(raw) {
  const id = /<messageID>([^<]*)<\/messageID>/.exec(raw)?.[1];
  const r = inboundReplies.find((m) => id !== undefined && m.includes(`<messageID>${id}</messageID>`));
  return r === undefined ? undefined : compact(r);
}

async function main() {
  const up = await step('listen+connect', async () => {
    mos = new MosConnection({
      mosID: opt.mosId, // the connector's own ID: the gateway's, so that envelopes match
      acceptsConnections: true, // listen for the gateway's outbound connections
      ports: opt.listen,
      strict: true,
      profiles: { 0: true, 1: true, 2: true, 4: true },
      debug: false,
    });
    mos.on('error', (e) => process.stderr.write(`connector error: ${e}\n`));
    mos.on('warning', (e) => process.stderr.write(`connector warning: ${e}\n`));
    mos.on('rawMessage', onRaw);
    await mos.init();
    // Registered right away (synchronously), so that the device exists before the gateway's
    // first message on the listening ports is handled.
    device = await mos.connect({
      primary: {
        id: opt.ncsId,
        host: opt.host,
        ports: { lower: opt.lower, upper: opt.upper, query: opt.upper },
        dontUseQueryPort: true,
        timeout: 4000,
        heartbeatInterval: 1000,
      },
    });
    registerCallbacks(device);
    await until(() => (device.getConnectionStatus().PrimaryConnected && heartbeatReplies >= 2 ? true : undefined));
    return `listening on ${JSON.stringify(opt.listen)}; ${device.getConnectionStatus().PrimaryStatus}`;
  });
  if (!up) return;

  await step('gateway connects and its heartbeats are answered', async () => {
    await until(() => {
      const hb = inbound.filter((m) => messageName(m) === 'heartbeat');
      const answered = hb.filter((m) => /<heartbeat>/.test(replyTo(m) ?? ''));
      return gatewayConnections >= 2 && answered.length >= 2 ? answered.length : undefined;
    });
    const hb = inbound.filter((m) => messageName(m) === 'heartbeat');
    return `${gatewayConnections} connection(s) from the gateway; ${hb.length} heartbeat(s) received, each answered: ${replyTo(hb[0])}`;
  });

  await step('gateway resync: roReqAll → roListAll, roReq → roList, the NCS copy held', async () => {
    const reqAll = await until(() => inbound.find((m) => messageName(m) === 'roReqAll'));
    const listAll = await until(() => replyTo(reqAll));
    if (!/<roListAll>/.test(listAll) || !listAll.includes(NCS_RO_ID)) throw new Error(`connector's reply to roReqAll: ${listAll}`);
    const req = await until(() => inbound.find((m) => messageName(m) === 'roReq' && m.includes(NCS_RO_ID)));
    const list = await until(() => replyTo(req));
    if (!/<roList>/.test(list)) throw new Error(`connector's reply to roReq: ${list}`);
    // The gateway answers roReq from its copy, which is now the NCS's.
    let held = '';
    for (let i = 0; i < 40 && held !== NCS_RO_SHAPE; i++) {
      try {
        held = shape(await device.sendRequestRunningOrder(str(NCS_RO_ID)));
      } catch (e) {
        held = `(refused: ${e instanceof Error ? e.message : e})`;
      }
      if (held !== NCS_RO_SHAPE) await new Promise((r) => setTimeout(r, 100));
    }
    if (held !== NCS_RO_SHAPE) throw new Error(`the gateway holds [${held}], the NCS sent [${NCS_RO_SHAPE}]`);
    if (roReqs.join(' ') !== NCS_RO_ID) throw new Error(`roReq for [${roReqs.join(' ')}], expected [${NCS_RO_ID}]`);
    return `roReqAll answered ${compact(listAll).slice(0, 160)}…; roReq ${roReqs.join(' ')} answered roList; gateway's roList: ${held}`;
  });

  await step('mosReqAll pause 0 → mosListAll parsed', async () => {
    const ack = await device.sendRequestAllMOSObjects(0);
    if (text(ack.Status) !== 'ACK') throw new Error(`mosAck status ${JSON.stringify(text(ack.Status))}`);
    const raw = await until(() => inbound.find((m) => messageName(m) === 'mosListAll'));
    const objs = await until(() => objectBatches.find((b) => b.length === opt.objects.length));
    const problems = objectProblems(objs);
    if (problems.length) throw new Error(`${problems.join('; ')}; raw: ${compact(raw)}`);
    const reply = replyTo(raw) ?? '(no reply seen)';
    if (!/<mosAck>.*<status>ACK<\/status>/.test(reply)) throw new Error(`the connector did not ACK mosListAll: ${reply}`);
    return `mosAck ${text(ack.Status)}; mosListAll with ${objs.length} objects: ${objs.map((o) => `${text(o.ID)} "${text(o.Slug)}" ${text(o.Type)}`).join(', ')}; connector answered ${reply}`;
  });

  await step('mosObjCreate → mosAck with the new objID → mosObj NEW parsed', async () => {
    const slug = 'Remote: Oslo reporter';
    let ack;
    try {
      ack = await device.sendObjectCreate({
        Slug: str(slug),
        Type: 'VIDEO',
        TimeBase: 50,
        Duration: 1500,
        CreatedBy: str('interop'),
        Created: mosTypes.mosTime.create(Date.now()),
      });
    } catch (e) {
      throw new Error(`mosObjCreate refused: ${e instanceof Error ? e.message : e}`);
    }
    const id = text(ack.ID);
    if (text(ack.Status) !== 'ACK' || !id) throw new Error(`mosAck ${JSON.stringify(ack)}`);
    const obj = await until(() => objectBatches.flat().find((o) => text(o.ID) === id));
    const problems = [];
    if (text(obj.Status) !== 'NEW') problems.push(`status ${JSON.stringify(text(obj.Status))}, expected NEW`);
    if (text(obj.Slug) !== slug) problems.push(`objSlug ${JSON.stringify(text(obj.Slug))}`);
    if (text(obj.Type) !== 'VIDEO') problems.push(`objType ${JSON.stringify(text(obj.Type))}`);
    if (text(obj.AirStatus) !== 'NOT READY') problems.push(`objAir ${JSON.stringify(text(obj.AirStatus))}, expected NOT READY (placeholder)`);
    const raw = inbound.find((m) => messageName(m) === 'mosObj' && m.includes(`<objID>${id}</objID>`));
    if (!raw) problems.push('no raw mosObj for it seen');
    if (problems.length) throw new Error(`${problems.join('; ')}; raw: ${compact(raw)}`);
    return `mosAck ACK objID ${id} (statusDescription ${JSON.stringify(text(ack.Description))}); mosObj ${text(obj.Status)} "${text(obj.Slug)}" objAir ${text(obj.AirStatus)}; connector answered ${replyTo(raw)}`;
  });

  const created = await step('roCreate', async () => {
    const ack = await device.sendCreateRunningOrder({
      ID: str(RO_ID),
      Slug: str('Status show'),
      Stories: [{ ID: str('S1'), Slug: str('Story S1'), Items: ['I11', 'I12'].map(item) }],
    });
    if (text(ack.Status) !== 'OK') throw new Error(`roAck ${JSON.stringify(text(ack.Status))}`);
    return `roAck OK for ${RO_ID}`;
  });
  if (!created) return;

  report('await statuses', true, { roID: RO_ID, statusMessages: opt.statuses });

  if (opt.statuses === 'roElementStat') {
    await step('roElementStat ITEM/STORY/RO parsed', async () => {
      const got = await until(() => (statuses.length >= 4 ? statuses : undefined));
      const seen = got.map((s) => {
        const ids =
          s.kind === 'ITEM'
            ? `${text(s.RunningOrderId)}/${text(s.StoryId)}/${text(s.ID)} objID=${text(s.ObjectId)} channel=${text(s.Channel)}`
            : s.kind === 'STORY'
              ? `${text(s.RunningOrderId)}/${text(s.ID)}`
              : text(s.ID);
        return `${s.kind} ${ids} ${JSON.stringify(text(s.Status))}`;
      });
      const want = [
        `ITEM ${RO_ID}/S1/I11 objID=OBJ-I11 channel=CAM1 "PLAY"`,
        `ITEM ${RO_ID}/S1/I12 objID=OBJ-I12 channel= "NOT READY: placeholder not bound"`,
        `STORY ${RO_ID}/S1 "READY"`,
        `RO ${RO_ID} "READY"`,
      ];
      if (seen.join('\n') !== want.join('\n')) throw new Error(`parsed [${seen.join('; ')}], expected [${want.join('; ')}]`);
      const raws = inbound.filter((m) => messageName(m) === 'roElementStat');
      const replies = raws.map((m) => replyTo(m) ?? '(none)');
      if (!replies.every((r) => /<roAck>.*<roStatus>OK<\/roStatus>/.test(r))) throw new Error(`replies: ${replies.join(' | ')}`);
      return `${seen.join('; ')}; each answered roAck OK`;
    });
  } else {
    // Connector 4.1.1 has no roItemStat/roStat handler (its MosDevice.routeData knows only
    // roElementStat): the messages still go through its framing and its XML parser (xml2js, the
    // very function it applies to every message), which is what is checked here, and its device
    // answers them with a mosAck NACK "Unsupported function".
    await step('roItemStat/roStat parsed by the connector\'s XML reader', async () => {
      const raws = await until(() => {
        const r = inbound.filter((m) => ['roItemStat', 'roStat'].includes(messageName(m)));
        return r.length >= 3 && r.every((m) => replyTo(m) !== undefined) ? r : undefined;
      });
      const seen = raws.map((raw) => {
        const doc = xml2js(raw).mos;
        const name = messageName(raw);
        const m = doc[name];
        return name === 'roItemStat'
          ? `roItemStat ${text(m.roID)}/${text(m.storyID)}/${text(m.itemID)} objID=${text(m.objID)} ${JSON.stringify(text(m.status))} time=${m.time !== undefined}`
          : `roStat ${text(m.roID)} ${JSON.stringify(text(m.status))} time=${m.time !== undefined}`;
      });
      const want = [
        `roItemStat ${RO_ID}/S1/I11 objID=OBJ-I11 "PLAY" time=true`,
        `roItemStat ${RO_ID}/S1/I12 objID=OBJ-I12 "NOT READY: placeholder not bound" time=true`,
        `roStat ${RO_ID} "READY" time=true`,
      ];
      if (seen.join('\n') !== want.join('\n')) throw new Error(`parsed [${seen.join('; ')}], expected [${want.join('; ')}]`);
      if (statuses.length) throw new Error(`a status callback fired: ${JSON.stringify(statuses)}`);
      const replies = raws.map((m) => replyTo(m));
      const handled = replies.every((r) => /<roAck>.*<roStatus>OK<\/roStatus>/.test(r));
      const unsupported = replies.every((r) => /<mosAck>.*<status>NACK<\/status>.*Unsupported function: &quot;ro(Item)?Stat&quot;|Unsupported function: "ro(Item)?Stat"/.test(r));
      if (!handled && !unsupported) throw new Error(`unexpected replies: ${replies.join(' | ')}`);
      return {
        parsed: seen,
        connectorReplies: replies,
        limitation: handled ? null : 'connector 4.1.1 has no roItemStat/roStat handler: answered mosAck NACK "Unsupported function"',
      };
    });
  }

  await step('roDelete', async () => {
    const ack = await device.sendDeleteRunningOrder(str(RO_ID));
    if (text(ack.Status) !== 'OK') throw new Error(`roAck ${JSON.stringify(text(ack.Status))}`);
    return 'roAck OK';
  });

  await step('no unparsed or refused message from the gateway', async () => {
    const names = inbound.map(messageName);
    const counts = {};
    for (const n of names) counts[n] = (counts[n] ?? 0) + 1;
    const refused = inbound
      .filter((m) => !['roItemStat', 'roStat'].includes(messageName(m)))
      .map((m) => ({ m, r: replyTo(m) }))
      .filter(({ r }) => r === undefined || /NACK/.test(r));
    // The last heartbeat may still be in flight.
    const real = refused.filter(({ m, r }) => !(r === undefined && messageName(m) === 'heartbeat'));
    if (real.length) throw new Error(real.map(({ m, r }) => `${compact(m)} → ${r ?? '(no reply)'}`).join(' | '));
    return counts;
  });
}

main()
  .catch((e) => report('script', false, e instanceof Error ? e.stack : String(e)))
  .finally(finish);

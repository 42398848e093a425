// Interoperability check: @mos-connection/connector plays the newsroom system (NCS) against a
// running mos-gateway.
//
// The connector has no NCS mode. It is configured with the gateway's mosID as its own `mosID`
// and connects to the gateway's ports with the NCS's ID as the "primary" ID; the messages it
// then sends carry exactly the envelope an NCS would send (mosID = the gateway, ncsID = the NCS).
//
// Usage:
//   node ncs.mjs --host 127.0.0.1 --lower 10540 --upper 10541 [--query 10542] \
//                --mos-id nmos.gateway.mos --ncs-id ENPS.NCS
// Every option may instead come from the environment: GATEWAY_HOST, GATEWAY_LOWER_PORT,
// GATEWAY_UPPER_PORT, GATEWAY_QUERY_PORT (0 or empty: the gateway has no query port),
// GATEWAY_MOS_ID, NCS_ID. NCS_DEBUG=1 writes every raw message to stderr.
//
// Output: one JSON line per step on stdout, {"step": ..., "ok": true|false, "detail": ...}.
// Exit status 0 only when every step passed; the script always exits (each step has a
// timeout, and a watchdog ends the whole run).

import { parseArgs } from 'node:util';
import connector from '@mos-connection/connector';

const { MosConnection, getMosTypes } = connector;

const STEP_TIMEOUT_MS = 5000;
const RUN_TIMEOUT_MS = 50000;
const RO_ID = 'INTEROP.RO.1';

// ---------------------------------------------------------------------------------------------
// Options

const { values: args } = parseArgs({
  options: {
    host: { type: 'string' },
    lower: { type: 'string' },
    upper: { type: 'string' },
    query: { type: 'string' },
    'mos-id': { type: 'string' },
    'ncs-id': { type: 'string' },
  },
});

const opt = {
  host: args.host ?? process.env.GATEWAY_HOST ?? '127.0.0.1',
  lower: Number(args.lower ?? process.env.GATEWAY_LOWER_PORT ?? 10540),
  upper: Number(args.upper ?? process.env.GATEWAY_UPPER_PORT ?? 10541),
  query: Number(args.query ?? process.env.GATEWAY_QUERY_PORT ?? 0),
  mosId: args['mos-id'] ?? process.env.GATEWAY_MOS_ID ?? 'nmos.gateway.mos',
  ncsId: args['ncs-id'] ?? process.env.NCS_ID ?? 'ENPS.NCS',
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
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** Runs one step; its function returns the detail for the report or throws. */
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

// Whatever happens, end the process.
const watchdog = setTimeout(() => {
  report('watchdog', false, `run not finished within ${RUN_TIMEOUT_MS} ms`);
  process.exit(2);
}, RUN_TIMEOUT_MS);

// ---------------------------------------------------------------------------------------------
// MOS values

const mosTypes = getMosTypes(true);
const str = (s) => mosTypes.mosString128.create(s);
const text = (v) => (v === undefined || v === null ? '' : mosTypes.mosString128.is(v) ? mosTypes.mosString128.stringify(v) : String(v));

function item(id) {
  return { ID: str(id), Slug: str(`Item ${id}`), ObjectID: str(`OBJ-${id}`), MOSID: opt.mosId };
}

function story(id, itemIds) {
  return { ID: str(id), Slug: str(`Story ${id}`), Items: itemIds.map(item) };
}

/** "S1(I11 I12) S2()" for a running order as returned by roReq. */
function shape(ro) {
  return (ro?.Stories ?? [])
    .map((s) => `${text(s.ID)}(${(s.Items ?? []).map((i) => text(i.ID)).join(' ')})`)
    .join(' ');
}

/** Throws unless the roAck says OK; returns its status. */
function expectOk(ack, what) {
  const status = text(ack?.Status);
  if (status !== 'OK') throw new Error(`${what}: roAck status ${JSON.stringify(status)}, expected "OK"`);
  return `roAck ${status}`;
}

// ---------------------------------------------------------------------------------------------
// Connection

const received = []; // raw messages received from the gateway, newest last
let heartbeatReplies = 0;

// In strict mode the connector wants every MOS-device callback of the profiles declared below
// (its `isNCS` option is not passed on to the device, so it cannot be told it is the NCS), and
// it needs at least one profile besides 0. These callbacks serve messages sent *to* the NCS; in
// this script the connector does not listen, so the gateway's own connections (and what it
// sends on them) never reach it: ncs-listener.mjs covers that way. Each one refuses and counts
// as a failed step.
const INBOUND_CALLBACKS = [
  'onRequestMachineInfo',
  'onRequestMOSObject',
  'onRequestAllMOSObjects',
  'onMOSObjects',
  'onCreateRunningOrder',
  'onReplaceRunningOrder',
  'onDeleteRunningOrder',
  'onRequestRunningOrder',
  'onMetadataReplace',
  'onRunningOrderStatus',
  'onStoryStatus',
  'onItemStatus',
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
  'onRequestAllRunningOrders',
  'onRunningOrderStory',
];

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

async function roReqExpect(expected) {
  const ro = await device.sendRequestRunningOrder(str(RO_ID));
  const got = shape(ro);
  if (got !== expected) throw new Error(`roReq: expected [${expected}], gateway has [${got}]`);
  return got;
}

/** An edit, then roReq to compare the order. */
async function edit(name, send, expected) {
  await step(name, async () => {
    const ack = expectOk(await send(), name);
    return `${ack}; roList: ${await roReqExpect(expected)}`;
  });
}

async function main() {
  const connected = await step('connect+heartbeat', async () => {
    mos = new MosConnection({
      mosID: opt.mosId, // the connector's own ID: here the gateway's, so the envelope is right
      acceptsConnections: false, // the gateway does not connect to the NCS (yet)
      strict: true, // build messages and parse the gateway's replies strictly
      profiles: { 0: true, 1: true, 2: true, 4: true },
      debug: false,
    });
    mos.on('error', (e) => process.stderr.write(`connector error: ${e}\n`));
    mos.on('warning', (e) => process.stderr.write(`connector warning: ${e}\n`));
    mos.on('rawMessage', (source, type, message) => {
      if (debug) process.stderr.write(`[${source} ${type}] ${message}\n`);
      if (type === 'recieved' || type === 'received') {
        received.push(message);
        if (received.length > 50) received.shift();
        if (/<heartbeat>/.test(message)) heartbeatReplies += 1;
      }
    });
    await mos.init();
    device = await mos.connect({
      primary: {
        id: opt.ncsId,
        host: opt.host,
        ports: { lower: opt.lower, upper: opt.upper, query: opt.query || opt.upper },
        dontUseQueryPort: !opt.query,
        timeout: 4000,
        heartbeatInterval: 1000, // the connector uses max(interval, timeout): one every 4 s
      },
    });
    for (const name of INBOUND_CALLBACKS) {
      device[name](async () => {
        report(`unexpected ${name}`, false, 'the gateway sent the NCS a message on its own');
        throw new Error('not expected here');
      });
    }
    // The connector reports "Connected" once a reply came back with the messageID of its
    // heartbeat on both the lower and the upper port; it does not look at what the reply is (a
    // NACK would do), so also wait for two real <heartbeat> replies.
    const deadline = Date.now() + STEP_TIMEOUT_MS - 500;
    while (!(device.getConnectionStatus().PrimaryConnected && heartbeatReplies >= 2)) {
      if (Date.now() > deadline) {
        const last = (received.at(-1) ?? '(nothing received)').replace(/\s+/g, ' ').trim();
        throw new Error(
          `not up: ${device.getConnectionStatus().PrimaryStatus}; heartbeat replies: ${heartbeatReplies}; last message received: ${last}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const s = device.getConnectionStatus();
    return `${s.PrimaryStatus}; heartbeat replies so far: ${heartbeatReplies}`;
  });
  if (!connected) return;

  await step('reqMachInfo', async () => {
    const info = await device.requestMachineInfo();
    const id = text(info.ID);
    const rev = text(info.mosRev);
    const p = info.supportedProfiles ?? {};
    const problems = [];
    if (id !== opt.mosId) problems.push(`ID ${JSON.stringify(id)} is not ${JSON.stringify(opt.mosId)}`);
    if (rev !== '2.8.1') problems.push(`mosRev ${JSON.stringify(rev)}`);
    for (const n of [0, 1, 2, 3, 4]) if (p[`profile${n}`] !== true) problems.push(`profile${n} not stated`);
    if (problems.length) throw new Error(problems.join('; '));
    return `ID ${id}, mosRev ${rev}, manufacturer ${text(info.manufacturer)}, model ${text(info.model)}`;
  });

  await step('roCreate', async () => {
    const ack = expectOk(
      await device.sendCreateRunningOrder({
        ID: str(RO_ID),
        Slug: str('Interop show'),
        Stories: [story('S1', ['I11', 'I12']), story('S2', ['I21']), story('S3', ['I31', 'I32']), story('S4', [])],
      }),
      'roCreate',
    );
    return `${ack}; roList: ${await roReqExpect('S1(I11 I12) S2(I21) S3(I31 I32) S4()')}`;
  });

  const ro = { RunningOrderID: str(RO_ID) };
  const inStory = (id) => ({ ...ro, StoryID: str(id) });
  const atItem = (s, i) => ({ ...ro, StoryID: str(s), ItemID: str(i) });

  await edit(
    'insert story S5 before S2',
    () => device.sendROInsertStories(inStory('S2'), [story('S5', ['I51'])]),
    'S1(I11 I12) S5(I51) S2(I21) S3(I31 I32) S4()',
  );
  await edit(
    'move stories S3,S4 before S1',
    () => device.sendROMoveStories(inStory('S1'), [str('S3'), str('S4')]),
    'S3(I31 I32) S4() S1(I11 I12) S5(I51) S2(I21)',
  );
  await edit(
    'move story S3 to the end (empty target)',
    () => device.sendROMoveStories(inStory(''), [str('S3')]),
    'S4() S1(I11 I12) S5(I51) S2(I21) S3(I31 I32)',
  );
  await edit(
    'replace item I12 of S1 with I13',
    () => device.sendROReplaceItems(atItem('S1', 'I12'), [item('I13')]),
    'S4() S1(I11 I13) S5(I51) S2(I21) S3(I31 I32)',
  );
  await edit(
    'insert item I30 before I31',
    () => device.sendROInsertItems(atItem('S3', 'I31'), [item('I30')]),
    'S4() S1(I11 I13) S5(I51) S2(I21) S3(I30 I31 I32)',
  );
  await edit(
    'move item I32 before I30',
    () => device.sendROMoveItems(atItem('S3', 'I30'), [str('I32')]),
    'S4() S1(I11 I13) S5(I51) S2(I21) S3(I32 I30 I31)',
  );
  await edit(
    'swap items I30,I31',
    () => device.sendROSwapItems(inStory('S3'), str('I30'), str('I31')),
    'S4() S1(I11 I13) S5(I51) S2(I21) S3(I32 I31 I30)',
  );
  await edit(
    'delete item I32',
    () => device.sendRODeleteItems(inStory('S3'), [str('I32')]),
    'S4() S1(I11 I13) S5(I51) S2(I21) S3(I31 I30)',
  );
  await edit(
    'replace story S4 with S6',
    () => device.sendROReplaceStories(inStory('S4'), [story('S6', ['I61'])]),
    'S6(I61) S1(I11 I13) S5(I51) S2(I21) S3(I31 I30)',
  );
  await edit(
    'delete story S5',
    () => device.sendRODeleteStories(ro, [str('S5')]),
    'S6(I61) S1(I11 I13) S2(I21) S3(I31 I30)',
  );
  await edit(
    'swap stories S1,S3',
    () => device.sendROSwapStories(ro, str('S1'), str('S3')),
    'S6(I61) S3(I31 I30) S2(I21) S1(I11 I13)',
  );

  await step('refused edit: delete unknown story', async () => {
    const ack = await device.sendRODeleteStories(ro, [str('NO.SUCH.STORY')]);
    const status = text(ack?.Status);
    if (status === 'OK') throw new Error('the gateway acknowledged deleting a story it does not have');
    return `roAck ${JSON.stringify(status)}; roList: ${await roReqExpect('S6(I61) S3(I31 I30) S2(I21) S1(I11 I13)')}`;
  });

  await step('roStorySend S2', async () => {
    const ack = expectOk(
      await device.sendRunningOrderStory({
        RunningOrderId: str(RO_ID),
        ID: str('S2'),
        Slug: str('Story S2'),
        Body: [
          { Type: 'p', Content: 'Anchor reads the intro.' },
          { Type: 'storyItem', Content: item('I21') },
          { Type: 'p', Content: 'Back to the studio.' },
        ],
      }),
      'roStorySend',
    );
    return `${ack}; roList: ${await roReqExpect('S6(I61) S3(I31 I30) S2(I21) S1(I11 I13)')}`;
  });

  // roReqAll goes from the MOS to the NCS (Profile 4). The connector can still send it; the
  // gateway has no list to give an NCS and refuses it with a roAck naming the message.
  await step('roReqAll (NCS to MOS: refused by the gateway)', async () => {
    const before = received.length;
    let outcome;
    try {
      const list = await device.sendRequestAllRunningOrders();
      outcome = `answered with roListAll of ${list.length} running order(s)`;
    } catch (e) {
      outcome = `rejected: ${e instanceof Error ? e.message : e}`;
    }
    const reply = received.slice(before).find((m) => /<roReqAll|<roListAll|<roAck|<mosAck/.test(m)) ?? '';
    const compact = reply.replace(/\s+/g, ' ').trim();
    if (!/<roAck>/.test(reply) || !/Unsupported message: roReqAll/.test(reply)) {
      throw new Error(`expected a roAck "Unsupported message: roReqAll"; ${outcome}; reply: ${compact || '(none seen)'}`);
    }
    return `gateway replied ${compact}`;
  });

  await step('roDelete', async () => {
    const ack = expectOk(await device.sendDeleteRunningOrder(str(RO_ID)), 'roDelete');
    let after;
    try {
      const gone = await device.sendRequestRunningOrder(str(RO_ID));
      after = `still listed: [${shape(gone)}]`;
    } catch (e) {
      return `${ack}; roReq now refused (${e instanceof Error ? e.message : e})`;
    }
    throw new Error(`roDelete acknowledged but roReq ${after}`);
  });

  await step(
    'heartbeats keep being answered',
    async () => {
      const start = heartbeatReplies;
      // One more round on both ports (the connector sends one per port every 4 s here).
      while (heartbeatReplies < start + 2) await new Promise((r) => setTimeout(r, 100));
      const s = device.getConnectionStatus();
      if (!s.PrimaryConnected) throw new Error(s.PrimaryStatus);
      return `${heartbeatReplies} heartbeat replies in all; ${s.PrimaryStatus}`;
    },
    12000,
  );
}

main()
  .catch((e) => report('script', false, e instanceof Error ? e.stack : String(e)))
  .finally(finish);

// A CODESYS-style line on node-opcua: an independent OPC UA stack the collector was not written against.
//
// It exposes only the seven core PackTags of one line under CODESYS symbolic node ids
// (ns=<CODESYSSPV3/3S/IecVarAccess>;s=|var|<runtime>.Application.<line>.<tag>), SignAndEncrypt
// (Basic256Sha256) only, and one user (no anonymous access). It plays a scripted timeline: each step
// sets some tags with the step's source timestamp (simulated plant time) while the server timestamp is
// the wall clock, one step every `step_ms` of wall time (>= 2 x node-opcua's 50 ms sampling floor, so
// no change is folded into another). Modes: "normal"; "no_source_ts" (every value is sent without a
// source timestamp, as some servers do: absent, or the null DateTime, alternately). Two changes with the same source timestamp are simply two
// steps with the same `t` (see tests/support/node_opcua_line.py).
//
// Driven by tests/support/node_opcua_line.py: the config is a JSON file (argv[2]); stdout carries
// one JSON line per event ({"event": "ready", ...}, {"event": "done", ...}); stdin "play\n" starts
// the timeline, "quit\n" (or SIGTERM) stops the server.

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import {
    OPCUAServer,
    OPCUACertificateManager,
    SecurityPolicy,
    MessageSecurityMode,
    DataType,
    DataValue,
    Variant,
    StatusCodes,
} from "node-opcua";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const TYPES = { Int32: DataType.Int32, UInt32: DataType.UInt32, Double: DataType.Double };
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const serverCM = new OPCUACertificateManager({
    rootFolder: cfg.pki_dir,
    automaticallyAcceptUnknownCertificate: true, // a test server: the collector's certificate is trusted on first contact
});
await serverCM.initialize();

const server = new OPCUAServer({
    port: cfg.port,
    hostname: "127.0.0.1",
    alternateHostname: ["127.0.0.1"],
    serverCertificateManager: serverCM,
    securityPolicies: [SecurityPolicy.Basic256Sha256],
    securityModes: [MessageSecurityMode.SignAndEncrypt],
    allowAnonymous: false,
    userManager: { isValidUser: (user, password) => user === cfg.user && password === cfg.password },
    buildInfo: { productName: "node-opcua CODESYS-style test line", softwareVersion: "1.0" },
    serverInfo: { applicationUri: "urn:industrial-twin:test:node-opcua-line" },
});
await server.initialize();

const addressSpace = server.engine.addressSpace;
const ns = addressSpace.registerNamespace(cfg.namespace_uri);
const device = ns.addObject({ organizedBy: addressSpace.rootFolder.objects, browseName: cfg.runtime });
const app = ns.addObject({ componentOf: device, browseName: "Application" });
const lineObj = ns.addObject({ componentOf: app, browseName: cfg.line });
const variables = {};
for (const [path, type] of Object.entries(cfg.tags)) {
    const v = ns.addVariable({
        componentOf: lineObj,
        browseName: path,
        nodeId: `s=|var|${cfg.runtime}.Application.${cfg.line}.${path}`,
        dataType: TYPES[type],
        minimumSamplingInterval: 0,
    });
    v.setValueFromSource(new Variant({ dataType: TYPES[type], value: 0 }), StatusCodes.Good, new Date(cfg.base_ms));
    variables[path] = { node: v, type };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let playing = false;

async function play() {
    if (playing) return;
    playing = true;
    let n = 0;
    for (const [index, step] of cfg.steps.entries()) {
        const source = new Date(cfg.base_ms + step.t_ms);
        const server_ts = new Date();
        for (const [path, value] of Object.entries(step.set)) {
            const { node, type } = variables[path];
            const dv = new DataValue({
                value: new Variant({ dataType: TYPES[type], value }),
                statusCode: StatusCodes.Good,
                sourceTimestamp: source,
                serverTimestamp: server_ts,
            });
            if (cfg.mode === "no_source_ts") {
                // node-opcua "repairs" a missing source timestamp with its clock; a server that sends none
                // is emulated by a value whose source timestamp always reads as absent or, every other step, as
                // the null DateTime (1601-01-01, encoded as 0) that other servers send instead
                const none = index % 2 === 0 ? null : new Date(Date.UTC(1601, 0, 1));
                Object.defineProperty(dv, "sourceTimestamp", { get: () => none, set: () => {} });
            }
            node._internal_set_dataValue(dv); // setValueFromSource would stamp server = source; a real server does not
            n += 1;
        }
        await sleep(cfg.step_ms);
    }
    await sleep(cfg.step_ms);
    emit({ event: "done", changes: n });
}

await server.start();
emit({
    event: "ready",
    endpoint: server.getEndpointUrl(),
    namespace_index: ns.index,
    certificate: serverCM.rootDir + "/own/certs/certificate.pem",
});

const stop = async () => {
    await server.shutdown(0);
    process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
createInterface({ input: process.stdin }).on("line", (line) => {
    if (line.trim() === "play") play().catch((err) => { emit({ event: "error", error: String(err.stack || err) }); process.exit(3); });
    else if (line.trim() === "quit") stop();
});

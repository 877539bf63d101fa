// An independent JSON-RPC peer for rpcbd's interop tests, built on vscode-jsonrpc.
//
//   node peer.js tcp PORT   connect to 127.0.0.1:PORT (content-length framing)
//   node peer.js stdio      talk over stdin/stdout (as a child process of rpcbd)
//
// It runs a fixed script against the Python side (requests both ways, notifications, an
// error reply, a cancellation), then reports what it saw with the notification
// "py/report" and stays up (answering requests) until the connection closes.
"use strict";

const net = require("net");
const rpc = require("vscode-jsonrpc/node");

function log(...args) {
  console.error("[peer.js]", ...args); // stderr: stdout may be the protocol
}

async function run(connection) {
  const report = {};
  let startedResolve;
  const started = new Promise((resolve) => { startedResolve = resolve; });

  connection.onRequest("node/add", (a, b) => a + b);
  connection.onRequest("node/fail", () => {
    throw new rpc.ResponseError(-32002, "node refused", { side: "node" });
  });
  connection.onNotification("node/note", (text) => { report.note = text; });
  connection.onNotification("node/started", () => startedResolve());

  // Requests from node to Python: positional, named, and an error reply.
  report.echo = await connection.sendRequest("py/echo", "hello from node");
  report.add = await connection.sendRequest("py/add", 2, 3);
  report.greet = await connection.sendRequest("py/greet", { name: "vscode-jsonrpc" });
  try {
    await connection.sendRequest("py/fail");
    report.error = "no error";
  } catch (error) {
    report.error = { code: error.code, message: error.message, data: error.data };
  }
  try {
    await connection.sendRequest("py/no_such_method");
  } catch (error) {
    report.unknown = error.code;
  }
  // A notification to Python.
  connection.sendNotification("py/note", "a notification from node");
  // Python calls node while node's call is in flight.
  report.nested = await connection.sendRequest("py/callNode", 20, 22);

  // Cancellation: once the Python handler runs, cancel; it must see it and reply -32800.
  const source = new rpc.CancellationTokenSource();
  const slow = connection.sendRequest("py/slow", 30, source.token);
  await started;
  source.cancel();
  try {
    report.cancel = { result: await slow };
  } catch (error) {
    report.cancel = { code: error.code, message: error.message };
  }
  report.sawCancel = await connection.sendRequest("py/sawCancel");

  connection.sendNotification("py/report", report);
}

function main() {
  const mode = process.argv[2];
  let reader;
  let writer;
  if (mode === "tcp") {
    const socket = net.connect(Number(process.argv[3]), "127.0.0.1");
    reader = new rpc.SocketMessageReader(socket);
    writer = new rpc.SocketMessageWriter(socket);
  } else if (mode === "stdio") {
    reader = new rpc.StreamMessageReader(process.stdin);
    writer = new rpc.StreamMessageWriter(process.stdout);
  } else {
    log("usage: node peer.js tcp PORT | stdio");
    process.exit(2);
  }
  const connection = rpc.createMessageConnection(reader, writer);
  connection.onClose(() => process.exit(0));
  connection.onError((error) => log("connection error", error));
  connection.listen();
  // Never outlive a test that went wrong.
  setTimeout(() => { log("giving up"); process.exit(3); }, 60000).unref();
  run(connection).catch((error) => {
    log("script failed:", error);
    connection.sendNotification("py/report", { failure: String(error && error.stack || error) });
  });
}

main();

// fauxqs (an SQS emulator) on loopback for the local stack: `node start.mjs PORT`.
// Its packaged CLI binds 0.0.0.0 and names queues sqs.REGION.localhost:PORT, which does
// not resolve here; this serves on 127.0.0.1 and names queues by the address they were
// reached at (http://127.0.0.1:PORT/ACCOUNT/NAME).
const { buildApp } = await import("fauxqs");
const { SqsStore } = await import(new URL("./sqs/sqsStore.js", import.meta.resolve("fauxqs")));
const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node start.mjs PORT");
  process.exit(2);
}
const sqsStore = new SqsStore();
sqsStore.host = "";
await buildApp({ logger: false, stores: { sqsStore } }).listen({ port, host: "127.0.0.1" });

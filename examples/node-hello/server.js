// node-hello: slipway's managed-runtime example (nodejs18), node's http module + ms.
//
// GET /            "Hello from node-hello"
// GET /env/<NAME>  the value of env var NAME (404 when unset)
// GET /uptime      how long the app has been up (ms: the dependency)
// GET /health      200 "ok"
//
// Listens on $PORT (App Runner sets it; default 8080) and stops cleanly on SIGTERM.
"use strict";

const http = require("http");
const ms = require("ms");

const started = Date.now();

function reply(res, status, text) {
  const body = text + "\n";
  res.writeHead(status, {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
  });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const path = req.url.split("?")[0];
  if (path === "/") {
    reply(res, 200, "Hello from node-hello");
  } else if (path === "/health") {
    reply(res, 200, "ok");
  } else if (path === "/uptime") {
    reply(res, 200, "up " + ms(Date.now() - started, { long: true }));
  } else if (path.startsWith("/env/") && path.length > "/env/".length) {
    const name = decodeURIComponent(path.slice("/env/".length));
    const value = process.env[name];
    if (value === undefined) reply(res, 404, name + " is not set");
    else reply(res, 200, value);
  } else {
    reply(res, 404, "not found");
  }
});

const port = parseInt(process.env.PORT || "8080", 10);
server.listen(port, () => console.log("node-hello: listening on port " + port));
process.on("SIGTERM", () => server.close(() => process.exit(0)));

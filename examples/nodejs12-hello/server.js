// nodejs12-hello: slipway's example for the nodejs12 runtime, node's http module only.
//
// GET /            "Hello from nodejs12-hello"
// GET /version     the Node.js version it runs on
// GET /env/<NAME>  the value of env var NAME (404 when unset)
//
// Listens on $PORT (App Runner sets it; default 8080) and stops cleanly on SIGTERM.
"use strict";

const http = require("http");

function reply(res, status, text) {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(text + "\n");
}

const server = http.createServer((req, res) => {
  const path = req.url.split("?")[0];
  if (path === "/") reply(res, 200, "Hello from nodejs12-hello");
  else if (path === "/version") reply(res, 200, process.version);
  else if (path.startsWith("/env/")) {
    const value = process.env[decodeURIComponent(path.slice("/env/".length))];
    if (value === undefined) reply(res, 404, "not set");
    else reply(res, 200, value);
  } else reply(res, 404, "not found");
});

const port = parseInt(process.env.PORT || "8080", 10);
server.listen(port, () => console.log("nodejs12-hello: listening on port " + port));
process.on("SIGTERM", () => server.close(() => process.exit(0)));

// CONNECT through Tollgate with Node's http and tls modules, trusting only the given CA:
// prints the status line of GET /v1/models on api.openai.com.
const http = require("http");
const tls = require("tls");
const fs = require("fs");

const [host, port, caFile] = process.argv.slice(2);
const req = http.request({ host, port: Number(port), method: "CONNECT", path: "api.openai.com:443" });
req.on("connect", (res, socket) => {
  if (res.statusCode !== 200) {
    console.log("CONNECT", res.statusCode);
    process.exit(1);
  }
  const conn = tls.connect(
    { socket, servername: "api.openai.com", ca: fs.readFileSync(caFile), ALPNProtocols: ["http/1.1"] },
    () => conn.write("GET /v1/models HTTP/1.1\r\nHost: api.openai.com\r\nConnection: close\r\n\r\n"),
  );
  let data = "";
  conn.on("data", (d) => (data += d));
  conn.on("end", () => console.log(data.split("\r\n")[0]));
  conn.on("error", (e) => {
    console.log("TLS error:", e.message);
    process.exit(2);
  });
});
req.on("error", (e) => {
  console.log("proxy error:", e.message);
  process.exit(3);
});
req.end();

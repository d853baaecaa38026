// alert_listeners.mjs -- the two places a hospital receives medvault's
// alerts, stood up on loopback for tests/cli/test_alerts.sh: a syslog
// collector (UDP) and a webhook receiver (HTTP).
//
// Why it exists: the test must see what actually left the server, byte for
// byte, not what the server believes it sent.  Usage:
//
//   node alert_listeners.mjs DIR
//
// Both sockets bind 127.0.0.1 on a port the kernel picks; once both listen,
// DIR/ports holds "UDP_PORT HTTP_PORT".  Every datagram is appended to
// DIR/syslog.txt as one line (its own line ending, if any, removed); every
// HTTP request to DIR/webhook.jsonl as one JSON line {method, url,
// content_type, body}, answered 204.  Runs until killed.
import dgram from "node:dgram";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";

const dir = process.argv[2];
if (!dir) {
    console.error("usage: node alert_listeners.mjs DIR");
    process.exit(2);
}
fs.mkdirSync(dir, { recursive: true });
const syslogFile = path.join(dir, "syslog.txt");
const webhookFile = path.join(dir, "webhook.jsonl");

function listenUdp() {
    return new Promise((resolve, reject) => {
        const sock = dgram.createSocket("udp4");
        sock.on("error", reject);
        sock.on("message", (msg) => {
            const line = msg.toString("utf8").replace(/\r?\n$/, "");
            fs.appendFileSync(syslogFile, line + "\n");
        });
        sock.bind(0, "127.0.0.1", () => resolve(sock.address().port));
    });
}

function listenHttp() {
    return new Promise((resolve, reject) => {
        const server = http.createServer((req, res) => {
            const chunks = [];
            req.on("data", (c) => chunks.push(c));
            req.on("end", () => {
                const record = {
                    method: req.method,
                    url: req.url,
                    content_type: req.headers["content-type"] || "",
                    body: Buffer.concat(chunks).toString("utf8"),
                };
                fs.appendFileSync(webhookFile, JSON.stringify(record) + "\n");
                res.writeHead(204);
                res.end();
            });
        });
        server.on("error", reject);
        server.listen(0, "127.0.0.1", () => resolve(server.address().port));
    });
}

const [udpPort, httpPort] = await Promise.all([listenUdp(), listenHttp()]);
// Written last and renamed into place: a reader never sees half of it.
fs.writeFileSync(path.join(dir, "ports.tmp"), `${udpPort} ${httpPort}\n`);
fs.renameSync(path.join(dir, "ports.tmp"), path.join(dir, "ports"));

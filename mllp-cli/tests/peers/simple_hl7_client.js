// simple-hl7's TCP client: sends the messages of the file given (separated by blank lines) to
// 127.0.0.1:PORT, each after the previous one's reply (keepalive: one connection), printing
// each reply.
require('./loopback.js');
const fs = require('fs');
const hl7 = require('simple-hl7');
const [port, path] = [Number(process.argv[2]), process.argv[3]];
const texts = fs.readFileSync(path, 'utf8').split('\n\n').filter((t) => t.trim());
const parser = new hl7.Parser({ segmentSeperator: '\r' });
const client = hl7.Server.createTcpClient({ host: '127.0.0.1', port, keepalive: true });
let i = 0;
function next() {
  if (i === texts.length) process.exit(0);
  const msg = parser.parse(texts[i++].trim().replace(/\n/g, '\r'));
  client.send(msg, (err, ack) => {
    console.log(err ? String(err) : ack.log().replace(/\r/g, ' | '));
    // The client marks itself free only after this callback returns.
    setImmediate(next);
  });
}
next();

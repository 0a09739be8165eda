// node-hl7-client: sends the messages of the file given (separated by blank lines) to
// 127.0.0.1:PORT over one connection (waitAck: each after the previous one's ACK), printing
// each reply; exits once every message was answered.
require('./loopback.js');
const fs = require('fs');
const { Client, Message } = require('node-hl7-client');
const [port, path] = [Number(process.argv[2]), process.argv[3]];
const texts = fs.readFileSync(path, 'utf8').split('\n\n').filter((t) => t.trim());
const client = new Client({ host: '127.0.0.1' });
let answered = 0;
const conn = client.createConnection({ port, waitAck: true }, async (res) => {
  console.log(res.getMessage().get('MSA.1').toString(), res.getMessage().get('MSA.2').toString());
  if (++answered === texts.length) process.exit(0);
});
conn.on('error', (e) => console.error(String(e)));
(async () => {
  for (const text of texts) {
    await conn.sendMessage(new Message({ text: text.trim().replace(/\n/g, '\r') }));
  }
})();

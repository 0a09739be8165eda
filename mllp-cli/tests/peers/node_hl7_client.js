// node-hl7-client: once connected to 127.0.0.1:PORT, sends the messages of the file given
// (separated by blank lines) over its connection, each after the previous one's reply (the
// reply handler sends the next), printing MSA-1 and MSA-2 of each reply.
require('./loopback.js');
const fs = require('fs');
const { Client, Message } = require('node-hl7-client');
const [port, path] = [Number(process.argv[2]), process.argv[3]];
const texts = fs.readFileSync(path, 'utf8').split('\n\n').filter((t) => t.trim());
const client = new Client({ host: '127.0.0.1' });
let next = 0;
const send = () => {
  if (next === texts.length) process.exit(0);
  void conn.sendMessage(new Message({ text: texts[next++].trim().replace(/\n/g, '\r') }));
};
const conn = client.createConnection({ port, waitAck: true }, async (res) => {
  const msg = res.getMessage();
  console.log(msg.get('MSA.1').toString(), msg.get('MSA.2').toString());
  setImmediate(send);
});
conn.on('error', (e) => console.error(String(e)));
conn.once('connect', send);

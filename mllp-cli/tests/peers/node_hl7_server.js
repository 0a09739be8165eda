// node-hl7-server: an inbound listener that answers every message AA with res.sendResponse.
require('./loopback.js');
const { Server } = require('node-hl7-server');
const server = new Server({ bindAddress: '127.0.0.1' });
server.createInbound({ port: 0 }, async (req, res) => {
  await res.sendResponse('AA');
});

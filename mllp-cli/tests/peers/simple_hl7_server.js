// simple-hl7's TCP server (hl7.tcp()), answering every message with its own ACK (res.end()).
require('./loopback.js');
const hl7 = require('simple-hl7');
const app = hl7.tcp();
app.use((req, res, next) => res.end());
app.use((err, req, res, next) => { if (res) res.end(); });
app.start(0);

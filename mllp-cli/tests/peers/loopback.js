// Loaded first by every Node peer: whatever address a library asks to listen on, it listens on
// 127.0.0.1 at a port the system picks, and the port is printed once listening; every
// connection a library opens must be to loopback. The process ends when standard input closes.
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  this.once('listening', () => console.log(this.address().port));
  const cb = args.find((a) => typeof a === 'function');
  return cb ? listen.call(this, 0, '127.0.0.1', cb) : listen.call(this, 0, '127.0.0.1');
};
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  const opts = typeof args[0] === 'object' ? args[0] : { port: args[0], host: args[1] };
  if (opts.host !== undefined && opts.host !== '127.0.0.1') {
    throw new Error(`refusing a connection to ${opts.host}: peers talk to 127.0.0.1 only`);
  }
  return connect.apply(this, args);
};
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

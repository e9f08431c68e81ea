// Preloaded into the Portkey gateway (node --import) so that it listens on
// 127.0.0.1 only. Its start-server.js (1.15.2) calls server.listen(port,
// undefined, cb), which binds every interface; this fills in the host when
// the caller gave none.
import net from 'node:net';

const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
    if (typeof args[0] === 'number' && (args[1] === undefined || args[1] === null)) {
        args[1] = '127.0.0.1';
    }
    return listen.apply(this, args);
};

import http from 'node:http';
import type net from 'node:net';

/**
 * Node sends every request with `Connection: Upgrade` to the server's 'upgrade' event, an h2c offer
 * (curl --http2 on http://) as much as a WebSocket handshake. One that no WebSocket endpoint takes
 * is answered as the plain HTTP/1.1 request it also is (RFC 9110 §7.8: a server may ignore the
 * offer), then the connection closes, since Node has stopped parsing it. Node has stopped at the
 * headers too, so a body would be lost: such a request is refused rather than run without it.
 */
export function answerIgnoringUpgrade(
  req: http.IncomingMessage,
  socket: net.Socket,
  handle: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): void {
  const res = new http.ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.on('finish', () => {
    res.detachSocket(socket);
    socket.destroySoon();
  });
  if (req.headers['transfer-encoding'] === undefined && !(Number(req.headers['content-length'] ?? 0) > 0)) {
    handle(req, res);
    return;
  }
  const body = JSON.stringify({
    error: { code: 'upgrade_with_body', message: 'Send this request without the Upgrade header: its body cannot be read with it.' },
  });
  res.writeHead(400, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(body);
}

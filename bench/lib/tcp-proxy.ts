/**
 * A counting TCP relay on 127.0.0.1 in front of a server: every connection is
 * piped byte for byte to the target port, and the bytes in each direction are
 * counted (HTTP headers, bodies and chunked-encoding framing included: what
 * went over the wire, TCP/IP headers aside). The client rows point a device at
 * it where they need "bytes the client sent" measured outside both programs,
 * the same way for Coffer and rclone (Coffer's own
 * `coffer_http_received_bytes_total` is reported beside it).
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface CountingProxy {
  readonly port: number;
  /** Bytes client → server since start (or the last reset). */
  readonly up: () => number;
  /** Bytes server → client. */
  readonly down: () => number;
  readonly connections: () => number;
  close(): Promise<void>;
}

export function startCountingProxy(targetPort: number): Promise<CountingProxy> {
  let up = 0;
  let down = 0;
  let connections = 0;
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    connections++;
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    open.add(client);
    open.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on('data', (b: Buffer) => {
      up += b.length;
      if (!upstream.write(b)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (b: Buffer) => {
      down += b.length;
      if (!client.write(b)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    const close = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      resolve({
        port,
        up: () => up,
        down: () => down,
        connections: () => connections,
        close: () =>
          new Promise<void>((res) => {
            for (const s of open) s.destroy();
            server.close(() => res());
          }),
      });
    });
  });
}

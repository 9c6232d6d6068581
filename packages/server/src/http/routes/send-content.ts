/** Shared download response: ETag, If-None-Match, Range, and the streamed body. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CofferError } from '@coffer/protocol';
import type { ItemRow } from '../../repositories/item.repository.ts';
import type { DownloadService } from '../../services/download.service.ts';
import { parseRange } from '../../services/download.service.ts';
import { writeFileRanges } from '../file-sender.ts';

export async function sendContent(req: FastifyRequest, reply: FastifyReply, downloads: DownloadService,
  item: ItemRow, version?: { id: string; size: number; created_at: number }): Promise<FastifyReply> {
  if (item.kind !== 'file') throw new CofferError('NOT_A_FILE');
  const etag = `"${version?.id ?? item.version_id}"`;
  const size = version?.size ?? item.size;
  reply.header('etag', etag).header('accept-ranges', 'bytes')
    .header('last-modified', new Date(version?.created_at ?? item.modified_at).toUTCString())
    .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(item.name)}`)
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'private, no-cache');
  const inm = req.headers['if-none-match'];
  if (inm && inm.split(',').map((t) => t.trim().replace(/^W\//, '')).some((t) => t === etag || t === '*')) {
    return reply.code(304).send();
  }
  // If-Range: only honour the range while the content is unchanged.
  const ifRange = req.headers['if-range'];
  let range = null;
  try {
    range = ifRange && ifRange !== etag ? null : parseRange(req.headers.range, size);
  } catch (e) {
    if (e instanceof CofferError && e.code === 'INVALID_RANGE') reply.header('content-range', `bytes */${size}`);
    throw e;
  }
  const plan = await downloads.plan(item, range, version?.id);
  reply.type('application/octet-stream');
  if (range) {
    reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`).header('content-length', range.end - range.start + 1);
  } else {
    reply.header('content-length', size);
  }
  if (req.method === 'HEAD') {
    await downloads.firstChunkStored(plan);
    takeOverResponse(reply).end(); // headers only: the real Content-Length, no body read
    return reply;
  }
  const files = await downloads.localFiles(plan);
  if (!files) {
    await downloads.firstChunkStored(plan);
    return reply.send(downloads.stream(plan));
  }
  // Local disk: write straight to the socket through pooled buffers (see file-sender.ts).
  takeOverResponse(reply);
  try {
    await writeFileRanges(reply.raw, files);
    reply.raw.end();
  } catch (err) {
    req.log.warn({ err }, 'download cut off');
    reply.raw.destroy();
  }
  return reply;
}

/** Sends the status line and headers ourselves; Fastify still runs onResponse (metrics, logs). */
function takeOverResponse(reply: FastifyReply) {
  reply.hijack();
  return reply.raw.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string | number | string[]>);
}

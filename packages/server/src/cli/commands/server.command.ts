/** `coffer server`: run the HTTP server until SIGTERM/SIGINT, then shut down gracefully. */
import { Command } from 'commander';
import { redactConfig } from '../../config/load-config.ts';
import { addConfigFlags, configFromFlags } from '../config-flags.ts';

export function serverCommand(): Command {
  const cmd = new Command('server').description('Run the Coffer server (SQLite + local folder by default; PostgreSQL and S3 when configured)');
  addConfigFlags(cmd);
  cmd.action(async (opts) => {
    // Loaded here, not at the top: the client's verbs share this program and should start fast.
    const { startServer } = await import('../../app.ts');
    const { userRepository } = await import('../../repositories/user.repository.ts');
    const config = configFromFlags(opts);
    const server = await startServer(config);
    const log = server.http.log;
    log.info({ config: redactConfig(config), url: server.url, database: server.coffer.metadata.dialect, blobs: server.coffer.blobs.kind }, 'coffer listening');
    if ((await userRepository.list(server.coffer.metadata.db)).length === 0) {
      const data = config.dataDir === './data' ? '' : ` --data ${config.dataDir}`;
      process.stderr.write(`\nCoffer is running at ${server.url}\nNo accounts yet. Create the first (admin) account with:\n  npm run coffer -- admin create-user <name> --admin${data}\n\n`);
    }
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down: finishing requests in flight');
      const force = setTimeout(() => { log.error('shutdown took too long; exiting'); process.exit(1); }, 30_000);
      force.unref();
      server.close().then(() => process.exit(0), (err) => { log.error({ err }, 'shutdown failed'); process.exit(1); });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  return cmd;
}

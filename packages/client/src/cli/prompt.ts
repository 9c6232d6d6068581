/** Asks a question on the terminal; a secret is read without echo. Fails clearly when there is no terminal. */
import { createInterface } from 'node:readline';

export async function ask(question: string, opts: { secret?: boolean } = {}): Promise<string> {
  if (!process.stdin.isTTY) throw new Error(`${question.trim()} — no terminal to ask on; pass it as an option instead.`);
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  if (opts.secret) {
    const out = rl as unknown as { _writeToOutput?: (s: string) => void };
    out._writeToOutput = (s: string) => { if (s.includes(question)) process.stderr.write(s); };
  }
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    if (opts.secret) process.stderr.write('\n');
    rl.close();
  }
}

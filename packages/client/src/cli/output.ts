/** How commands speak: plain lines for people, one JSON document with --json, errors that say what to do next. */
export interface Output {
  json: boolean;
  line(text: string): void;
  result(value: unknown, human: () => void): void;
}

export function output(json: boolean): Output {
  return {
    json,
    line: (text) => { if (!json) process.stdout.write(text + '\n'); },
    result: (value, human) => { if (json) process.stdout.write(JSON.stringify(value, null, 2) + '\n'); else human(); },
  };
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Request validation. Query strings and path parameters arrive as text, so
 * their numbers and booleans are coerced; JSON bodies are not: `{"name": 123}`
 * is a wrong type and gets VALIDATION_FAILED rather than a folder named "123".
 */
import { Ajv } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';

const options = { useDefaults: true, removeAdditional: false, allErrors: false, strict: false } as const;
const coercing = new Ajv({ ...options, coerceTypes: 'array' });
const exact = new Ajv({ ...options, coerceTypes: false });

export const requestValidatorCompiler: FastifySchemaCompiler<any> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? exact : coercing;
  return ajv.compile(schema as object) as ReturnType<FastifySchemaCompiler<any>>;
};

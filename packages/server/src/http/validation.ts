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

function compile({ schema, httpPart }: { schema: unknown; httpPart?: string }) {
  const ajv = httpPart === 'body' ? exact : coercing;
  return ajv.compile(schema as object);
}

export const requestValidatorCompiler: FastifySchemaCompiler<any> = (route) => compile(route) as ReturnType<FastifySchemaCompiler<any>>;

/**
 * The same, as Fastify's validator factory. Fastify rebuilds the validator of
 * a plugin that calls addSchema from the factory, not from
 * setValidatorCompiler: without this, such a plugin's routes would get its
 * default Ajv (which converts body types and silently drops unknown fields).
 */
export const buildRequestValidator = () => compile;

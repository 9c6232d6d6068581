export * from './errors.ts';
export * from './names.ts';
export * from './api-schemas.ts';
export * from './chunker.ts';
export * from './content-hash.ts';

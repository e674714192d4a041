// The value parsers in this folder run twice: inside the schema, to report a
// problem at its path, and again when building the Plan. They return failures as
// values so the schema can collect every one instead of stopping at the first.

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

export const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
export const fail = <T = never>(error: string): Parsed<T> => ({ ok: false, error });

/** JSON Schema validation with Ajv, compiled once per schema object. */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

const ajv = new Ajv({ allErrors: true, strict: false });
const compiled = new WeakMap<object, ValidateFunction>();

/** A validator for `schema`, compiled on first use and cached by the schema object. */
export function validatorFor(schema: object): (value: unknown) => readonly ErrorObject[] | undefined {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  const v = validate;
  return (value) => (v(value) ? undefined : (v.errors ?? []));
}

/** Ajv's errors as one readable line. */
export function schemaErrorText(errors: readonly ErrorObject[]): string {
  return ajv.errorsText(errors as ErrorObject[]);
}

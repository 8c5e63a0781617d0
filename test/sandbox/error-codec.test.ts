import { expect, it } from 'vitest';
import { BudgetExceededError } from '../../src/budget.ts';
import { LayerInputError } from '../../src/image/layer-entry.ts';
import { RegistryError } from '../../src/registry/registries.ts';
import { reviveError, serializeError } from '../../src/sandbox/error-codec.ts';
import { VmCancelledError } from '../../src/vm/vm-runner.ts';

const roundTrip = (err: unknown) => reviveError(structuredClone(serializeError(err)));

it('revives our error classes with their fields, as instanceof sees them', () => {
  const budget = roundTrip(new BudgetExceededError('BALER_MAX_LAYER_ENTRIES', 10, 'contents[0]: more than 10 entries'));
  expect(budget).toBeInstanceOf(BudgetExceededError);
  expect(budget.message).toBe('contents[0]: more than 10 entries (the budget BALER_MAX_LAYER_ENTRIES is 10)');
  expect(budget).toMatchObject({ setting: 'BALER_MAX_LAYER_ENTRIES', limit: 10, name: 'BudgetExceededError' });

  const registry = roundTrip(new RegistryError('denied', 'auth', { status: 401 }));
  expect(registry).toBeInstanceOf(RegistryError);
  expect(registry).toMatchObject({ kind: 'auth', status: 401 });
  expect(roundTrip(new VmCancelledError())).toBeInstanceOf(VmCancelledError);
});

it('keeps causes, and makes anything else a plain Error with its name', () => {
  const err = roundTrip(new LayerInputError('bad tar', { cause: new TypeError('deep') }));
  expect(err).toBeInstanceOf(LayerInputError);
  expect(err.cause).toBeInstanceOf(Error);
  expect((err.cause as Error).name).toBe('TypeError');
  expect((err.cause as Error).message).toBe('deep');
  const other = roundTrip('a string');
  expect(other).toBeInstanceOf(Error);
  expect(other.message).toBe('a string');
});

/**
 * Check contract logs of any test run against openapi.yaml:
 *   BALER_CONTRACT_LOG=/tmp/contract.jsonl npx vitest run test/e2e/…
 *   node --import tsx test/contract/check-log.ts /tmp/contract.jsonl
 * (the test services inherit the variable). Prints each violation; exits 1 if there is one.
 */
import { readContractLog, responseViolation, undocumentedRoutes } from './contract.ts';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: check-log.ts CONTRACT_LOG...');
  process.exit(2);
}
const { routes, responses } = await readContractLog(files);
const violations = [...undocumentedRoutes(routes).map((r) => `undocumented route ${r}`), ...new Set(responses.map(responseViolation).filter((v) => v !== null))];
for (const violation of violations) console.log(violation);
console.log(`${responses.length} responses, ${new Set(routes.map((r) => `${r.method} ${r.url}`)).size} routes checked; ${violations.length} violations`);
process.exit(violations.length > 0 ? 1 : 0);

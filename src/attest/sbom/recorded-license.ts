import { SPDX } from '@cyclonedx/cyclonedx-library';

/**
 * A licence as a package database records it (apk's `L:`), classified for the SBOM formats:
 * one SPDX licence id, a valid SPDX licence expression of known ids (`MIT AND BSD-3-Clause`,
 * `GPL-2.0-or-later WITH Classpath-exception-2.0`), or free text (`GPL2`, `custom`, `MIT BSD`),
 * which the formats carry as a named licence (CycloneDX) or a LicenseRef (SPDX).
 */
export type RecordedLicense = { kind: 'id'; id: string } | { kind: 'expression'; expression: string } | { kind: 'text'; text: string };

export function classifyLicense(recorded: string): RecordedLicense {
  const text = recorded.trim();
  const id = SPDX.fixupSpdxId(text);
  if (id !== undefined) return { kind: 'id', id };
  const tokens = text.split(/\s+|(?=[()])|(?<=[()])/).filter(Boolean);
  if (tokens.length > 1 && isExpression(tokens)) return { kind: 'expression', expression: tokens.join(' ').replace(/\( /g, '(').replace(/ \)/g, ')') };
  return { kind: 'text', text };
}

const LICENSE_REF = /^(?:DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+$/;

function isLicense(token: string | undefined): boolean {
  if (token === undefined) return false;
  if (LICENSE_REF.test(token)) return true;
  return SPDX.isSupportedSpdxId(token.endsWith('+') ? token.slice(0, -1) : token);
}

/** SPDX 2.3 annex D's grammar (compound := simple [WITH exception] | compound AND|OR compound | ( compound )), by recursive descent. */
function isExpression(tokens: string[]): boolean {
  let at = 0;
  const compound = (): boolean => {
    if (!term()) return false;
    while (tokens[at] === 'AND' || tokens[at] === 'OR') {
      at++;
      if (!term()) return false;
    }
    return true;
  };
  const term = (): boolean => {
    if (tokens[at] === '(') {
      at++;
      if (!compound() || tokens[at] !== ')') return false;
      at++;
      return true;
    }
    if (!isLicense(tokens[at])) return false;
    at++;
    if (tokens[at] === 'WITH') {
      at++;
      if (!SPDX.isSupportedSpdxId(tokens[at])) return false;
      at++;
    }
    return true;
  };
  return compound() && at === tokens.length;
}

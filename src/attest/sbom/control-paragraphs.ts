import { printable } from '../../image/printable.ts';
import { PackageDatabaseError } from './package-database-error.ts';
import { sbomOverBudget, type SbomBudgets } from './sbom-budgets.ts';

/** One paragraph's fields that the caller asked for, names lowercased, values as UTF-8 text. */
export type Paragraph = Map<string, string>;

/**
 * The paragraphs of a deb822 (RFC 822 style) file, dpkg's status form: `Name: value` lines,
 * continuation lines starting with a space or tab, paragraphs separated by empty lines (or lines
 * of only spaces and tabs, as deb822(5) allows). Only the fields in `wanted` are kept; every
 * field counts against the field budget and every paragraph against the package budget, so the
 * cost is one pass over the bytes, O(n).
 *
 * Read as latin1 so that string length is byte length (the budgets count bytes); kept values
 * are decoded as UTF-8.
 */
export function controlParagraphs(data: Buffer, what: string, wanted: ReadonlySet<string>, budgets: SbomBudgets): Paragraph[] {
  const text = data.toString('latin1');
  const paragraphs: Paragraph[] = [];
  let current: Paragraph | undefined;
  /** The field being read: its name (when wanted), its lines, and its bytes so far. */
  let field: { name: string | undefined; lines: string[]; bytes: number } | undefined;
  let lineNo = 0;

  const endField = () => {
    if (field?.name !== undefined && current) {
      const value = field.lines.join('\n');
      current.set(field.name, Buffer.from(value, 'latin1').toString('utf8'));
    }
    field = undefined;
  };
  const endParagraph = () => {
    endField();
    if (current) paragraphs.push(current);
    current = undefined;
  };

  for (let start = 0; start < text.length; ) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    lineNo++;
    if (/^[ \t]*$/.test(line)) {
      endParagraph();
      continue;
    }
    if (line.startsWith('#')) continue; // deb822 comments (not in dpkg's own files, harmless)
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (!field) throw new PackageDatabaseError(`${what}: line ${lineNo} continues no field`);
      field.bytes += line.length + 1;
      if (field.bytes > budgets.maxFieldBytes) throw sbomOverBudget(budgets, 'maxFieldBytes', `${what}: a field of more than ${budgets.maxFieldBytes} bytes at line ${lineNo}`);
      if (field.name !== undefined) field.lines.push(line.trim());
      continue;
    }
    if (line.length > budgets.maxFieldBytes) throw sbomOverBudget(budgets, 'maxFieldBytes', `${what}: a field of more than ${budgets.maxFieldBytes} bytes at line ${lineNo}`);
    const colon = line.indexOf(':');
    if (colon <= 0) throw new PackageDatabaseError(`${what}: line ${lineNo} is not 'Field: value' ('${printable(line.slice(0, 80))}')`);
    endField();
    if (!current) {
      if (paragraphs.length >= budgets.maxPackages) throw sbomOverBudget(budgets, 'maxPackages', `${what}: more than ${budgets.maxPackages} packages`);
      current = new Map();
    }
    const name = line.slice(0, colon).toLowerCase();
    field = { name: wanted.has(name) ? name : undefined, lines: [line.slice(colon + 1).trim()], bytes: line.length };
  }
  endParagraph();
  return paragraphs;
}

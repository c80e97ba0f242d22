// CSV cells that a spreadsheet reads back as the text they hold. A file or folder name is chosen by whoever made
// the images folder: one that starts with "=", "+", "-" or "@" (or a tab or carriage return) is a formula to Excel,
// LibreOffice and Google Sheets ("=HYPERLINK(…)", "=cmd|…"). OWASP's CSV-injection advice: prefix such a cell with
// a single quote, quote the cell, and double the quotes inside it.
// https://owasp.org/www-community/attacks/CSV_Injection

/** The first characters that make a spreadsheet read a cell as a formula (OWASP's list). */
const formulaStart = /^[=+\-@\t\r]/;
/** Characters that need the cell quoted: RFC 4180's, plus ";" (the separator in locales with decimal commas). */
const needsQuotes = /[",;\r\n\t]/;

function quoted(value: string): string {
  return `"${value.replace(/"/g, '""')}"`;
}

/** A text cell (a path, a label): escaped as OWASP advises when it would read as a formula, quoted when needed. */
export function csvTextCell(value: string): string {
  if (formulaStart.test(value)) return quoted(`'${value}`);
  return needsQuotes.test(value) ? quoted(value) : value;
}

/**
 * A number the engine computed: written as it is ("-0.25" is a number to every spreadsheet, not a formula). A
 * non-finite one ("-Infinity", "NaN") is text, escaped like any other.
 */
export function csvNumberCell(value: number): string {
  return Number.isFinite(value) ? String(value) : csvTextCell(String(value));
}

/** One CSV line from typed cells: strings are text cells, numbers number cells. */
export function csvLine(cells: readonly (string | number)[]): string {
  return cells.map((cell) => (typeof cell === 'number' ? csvNumberCell(cell) : csvTextCell(cell))).join(',');
}

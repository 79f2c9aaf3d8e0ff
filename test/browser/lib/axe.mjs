// axe.mjs runs axe-core (the accessibility rules engine) in a page and
// returns what it found, in a form a failing assertion can print.
//
// The page's Content-Security-Policy forbids inline scripts, so axe cannot be
// added as a <script> element; it is evaluated from the automation side
// instead (DevTools evaluation is not subject to the page's CSP), which keeps
// the page under test exactly as it is served.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE_SOURCE = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');

// WCAG 2.0 and 2.1, levels A and AA, plus axe's best practices (which is where
// rules such as "a role must be allowed on its element" live).
export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'];

/**
 * axeRun runs axe on the page's document and returns {violations, passes,
 * incomplete, checked}: violations as [{id, impact, help, nodes: [{target,
 * summary}]}], passes as a count of rules, incomplete as the ids of rules
 * that could not decide for some element, checked as the CSS selectors of
 * the elements some rule did decide on (passed or failed).
 * rules narrows the run to those rule ids.
 */
export async function axeRun(page, { rules } = {}) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
  return page.evaluate(
    async ([tags, rules]) => {
      const runOnly = rules ? { type: 'rule', values: rules } : { type: 'tag', values: tags };
      const r = await window.axe.run(document, { runOnly });
      return {
        violations: r.violations.map((v) => ({
          id: v.id,
          impact: v.impact,
          help: v.help,
          nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
        })),
        passes: r.passes.length,
        incomplete: r.incomplete.map((v) => v.id),
        checked: [...r.passes, ...r.violations].flatMap((v) => v.nodes.map((n) => n.target.join(' '))),
      };
    },
    [AXE_TAGS, rules ?? null],
  );
}

/** describeViolations renders violations one per line, for an assertion message. */
export function describeViolations(violations) {
  return violations
    .flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}) ${n.target}: ${v.help}\n    ${n.summary.replace(/\n/g, '\n    ')}`))
    .join('\n');
}

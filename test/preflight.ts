// Runs before the suite (npm test): what the tests need beyond `npm ci`. Under CI a missing piece stops the run
// here, within seconds, naming it and the fix; elsewhere it lists what the suite will skip and why.
import { requirements } from './requirements';

const missing = Object.values(requirements).flatMap((requirement) => {
  const why = requirement.missing();
  return why === undefined ? [] : [`- ${requirement.what}: ${why}. Fix: ${requirement.fix}.`];
});
if (missing.length === 0) {
  console.log(`preflight: ${Object.values(requirements).map((r) => r.what).join(', ')}: all present.`);
} else if (process.env.CI) {
  console.error(`preflight: CI needs every piece the tests use, and these are missing:\n${missing.join('\n')}`);
  process.exit(1);
} else {
  console.log(`preflight: these are missing, so the tests that need them will be skipped (under CI they fail):\n${missing.join('\n')}`);
}

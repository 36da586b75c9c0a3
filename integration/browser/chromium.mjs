// chromium.mjs launches the Chromium that every real-browser script of the
// integration tests drives: headless, without the sandbox (the tests may
// run as root in a container), and without the traffic of its own (sync,
// component updates, QUIC) that would sit beside the requests a test
// watches.

import { chromium } from 'playwright-core';

export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// launchChromium opens a persistent context in userDataDir with the browser
// at executablePath; options adds to playwright's launch options.
export function launchChromium(userDataDir, executablePath, options = {}) {
  return chromium.launchPersistentContext(userDataDir, { ...options, executablePath, headless: true, args: chromiumArgs });
}

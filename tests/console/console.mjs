// Drives custos' operator console in a real browser (Debian's chromium,
// through playwright-core): sign-in, cookie flags, device search, revoking
// a device, OCSP saying revoked on the certificate page, CSRF refusal, and
// a viewer who cannot revoke; the overview's counts and charts, the
// certificate's chain, the audit filters and the ACME page's failed order.
// Screenshots go to SHOTS. Exit code 0 = pass.
// Usage: node console.mjs BASE ADMIN_TOKEN VIEWER_NAME VIEWER_PASSWORD DEVICE SERIAL SHOTS
import { chromium } from 'playwright-core';

const [base, token, viewerName, viewerPassword, device, serial, shots] = process.argv.slice(2);
const fail = (msg) => { console.error('FAIL: ' + msg); process.exit(1); };
const expect = (cond, msg) => { if (!cond) fail(msg); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 800 } });
  const page = await ctx.newPage();
  // The console's script asks before a revocation: accept, and keep what
  // was asked.
  const asked = [];
  page.on('dialog', (d) => { asked.push(d.message()); d.accept(); });

  // Signed out: sent to the sign-in page.
  await page.goto(`${base}/console/`);
  expect(page.url().endsWith('/console/login'), `not sent to sign in: ${page.url()}`);
  await page.screenshot({ path: `${shots}/signin.png` });
  await page.fill('input[name=token]', 'wrong-token');
  await page.click('button[type=submit]');
  expect((await page.textContent('body')).includes('Wrong name, password or token'), 'a wrong token was accepted');
  await page.fill('input[name=token]', token);
  await page.click('button[type=submit]');
  expect((await page.textContent('h1')) === 'Overview', 'no overview after signing in');
  const count = async (sel) => Number((await page.textContent(sel)).trim());
  expect((await count('#issued-24h')) >= 1, 'the overview counts no issuance in the last 24 h');
  expect((await count('#revoked-24h')) === 0, 'the overview counts a revocation before any');
  expect((await count('#count-good')) >= 1, 'the overview counts no good certificate');
  expect((await page.locator('#chart-issued rect').count()) === 25, 'the issuance chart lacks its 24 bars');
  expect(!(await page.textContent('body')).includes('5 min'), 'the CRL age counts the backdating');

  // The session cookie's flags.
  const cookie = (await ctx.cookies()).find((c) => c.name === 'custos_console');
  expect(cookie, 'no session cookie');
  expect(cookie.httpOnly && cookie.secure && cookie.sameSite === 'Strict', `cookie flags: ${JSON.stringify(cookie)}`);

  // Find the device, see its certificate.
  await page.goto(`${base}/console/devices`);
  await page.fill('input[name=q]', device.slice(0, 5).toLowerCase());
  await page.click('form[action="/console/devices"] button');
  await page.click(`a:text("${device}")`);
  expect((await page.textContent('body')).includes(serial), 'the device page lacks its certificate');
  await page.screenshot({ path: `${shots}/device.png`, fullPage: true });

  // A change without the CSRF token is refused, and changes nothing.
  const forged = await page.request.post(`${base}/console/devices/${device}/revoke`, {
    form: { csrf: 'forged', reason: 'keyCompromise', confirm: device },
    maxRedirects: 0,
  });
  expect(forged.status() === 403, `forged CSRF answered ${forged.status()}`);
  await page.goto(`${base}/console/certificates/${serial}`);
  expect((await page.textContent('#ocsp')) === 'good', 'a forged request revoked');

  // The chain: the certificate, its issuing CA, the root; PEM with it.
  const chain = await page.textContent('#chain');
  expect(chain.includes('issuing CA') && chain.includes('root') && !chain.includes('not the CA below'), `chain: ${chain}`);
  const pem = await (await page.request.get(`${base}/console/certificates/${serial}/pem?chain=true`)).text();
  expect(pem.split('BEGIN CERTIFICATE').length - 1 === 3, 'the PEM with the chain does not hold three certificates');

  // Revoke everything of the device, with the confirmation.
  await page.goto(`${base}/console/devices/${device}`);
  await page.selectOption('select[name=reason]', 'keyCompromise');
  await page.fill('input[name=confirm]', device);
  await page.click('text=Revoke all');
  await page.waitForURL(/[?]revoked=/);
  expect(asked.some((m) => m.includes(`Revoke every certificate of ${device}`)), `not asked before revoking: ${JSON.stringify(asked)}`);
  await page.goto(`${base}/console/certificates/${serial}`);
  expect((await page.textContent('#ocsp')) === 'revoked', 'OCSP does not say revoked');
  await page.screenshot({ path: `${shots}/certificate-revoked.png`, fullPage: true });
  await page.goto(`${base}/console/`);
  expect((await count('#revoked-24h')) === 1, 'the overview does not count the revocation just made');
  // The CRL is re-signed within crl.debounce_ms of the revocation.
  for (let i = 0; i < 50 && (await count('#count-revoked')) !== 1; i++) {
    await page.waitForTimeout(200);
    await page.reload();
  }
  expect((await count('#count-revoked')) === 1, 'the overview does not count the revoked certificate on the CRL');
  await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });

  // Mark the device lost (status only; the revocation was above).
  await page.goto(`${base}/console/devices/${device}`);
  await page.selectOption('select[name=status]', 'lost');
  await page.click('form[action$="/status"] button');
  expect((await page.textContent('strong.bad')) === 'lost', 'the status did not change');

  // The audit log shows who.
  await page.goto(`${base}/console/audit?device=${device}`);
  expect((await page.textContent('body')).includes('console:admin'), 'the audit log does not name the operator');
  await page.screenshot({ path: `${shots}/audit.png`, fullPage: true });
  await page.goto(`${base}/console/audit?kind=revocation&since=2099-01-01T00:00`);
  expect((await page.textContent('body')).includes('No entry matches.'), 'a future "from" still lists entries');
  await page.goto(`${base}/console/audit?kind=revocation&until=2099-01-01T00:00`);
  expect((await page.locator('#audit tr').count()) === 2, 'the revocation is not listed alone');
  await page.goto(`${base}/console/audit?since=yesterday`);
  expect((await page.textContent('body')).includes('is not a time'), 'a bad time is not refused');

  // An external account binding key, shown once.
  await page.goto(`${base}/console/acme`);
  await page.fill('input[name=name]', 'laptop-fleet');
  await page.click('form[action="/console/acme/eab"] button');
  const kid = await page.textContent('#eab-kid');
  expect(kid && kid.length > 10 && (await page.textContent('#eab-hmac')).length > 20, 'no key shown');
  await page.goto(`${base}/console/acme`);
  expect(!(await page.content()).includes(kid), 'the key is shown again');
  const failures = await page.textContent('#failures');
  expect(failures.includes('ip:127.0.0.1') && failures.includes('invalid'), `failures: ${failures}`);
  expect((await page.locator('#accounts tr').count()) === 2, 'the new ACME account is not listed');
  await page.screenshot({ path: `${shots}/acme.png`, fullPage: true });

  // A viewer sees, and cannot revoke.
  const vctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 800 } });
  const v = await vctx.newPage();
  await v.goto(`${base}/console/login`);
  await v.fill('input[name=name]', viewerName);
  await v.fill('input[name=password]', viewerPassword);
  await v.click('button[type=submit]');
  expect((await v.textContent('h1')) === 'Overview', 'the viewer could not sign in');
  await v.goto(`${base}/console/devices/${device}`);
  expect(!(await v.content()).includes('Revoke all'), 'a viewer is offered revocation');
  await v.screenshot({ path: `${shots}/viewer-phone.png`, fullPage: true });
  const csrf = await v.getAttribute('input[name=csrf]', 'value');
  const attempt = await v.request.post(`${base}/console/certificates/${serial}/revoke`, {
    form: { csrf, reason: 'superseded' },
    maxRedirects: 0,
  });
  expect(attempt.status() === 403, `a viewer's revocation answered ${attempt.status()}`);

  // Guessing a password: five failures lock the account for a while, so
  // the right password is refused too; other accounts are unaffected.
  const signIn = (name, password) => page.request.post(`${base}/console/login`, {
    form: { name, password }, maxRedirects: 0,
  });
  for (let i = 0; i < 5; i++) {
    const r = await signIn(viewerName, `guess-${i}`);
    expect(r.status() === 401, `wrong password ${i} answered ${r.status()}`);
  }
  const locked = await signIn(viewerName, viewerPassword);
  expect(locked.status() === 429, `a locked account answered ${locked.status()}`);
  expect((await signIn('nobody', 'x')).status() === 401, 'an unknown name is not refused as wrong');
  console.log('console: all checks passed');
} finally {
  await browser.close();
}

// Real-browser test of the INDM demo (the trunk build in dist/): headless Debian
// Chromium driven by playwright-core, WebGPU on SwiftShader (--enable-unsafe-webgpu),
// and again with WebGPU disabled (the CPU fallback). The page's exposed statistics
// (window.indmStats) are compared with the native f64 reference of the same share
// link (the `indm-demo` binary run natively). Screenshots go to --artifacts.
//
//   node tests/browser/demo.test.mjs --dist dist --reference target/debug/indm-demo
//
// Exit code 0 iff every check passed; the last line is "N passed, M failed".

import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const opt = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const dist = path.resolve(opt('dist', path.join(root, 'dist')));
const reference = path.resolve(opt('reference', path.join(process.env.CARGO_TARGET_DIR || path.join(root, 'target'), 'debug', 'indm-demo')));
const models = path.resolve(opt('models', path.join(root, 'web', 'models')));
const artifacts = path.resolve(opt('artifacts', path.join(here, 'artifacts')));
const port = Number(opt('port', '8137'));
const browserPath = opt('browser', '/usr/lib/chromium/chromium');
const runTimeout = Number(opt('timeout', '300')) * 1000;
const base = `http://127.0.0.1:${port}/`;
fs.mkdirSync(artifacts, { recursive: true });

const BASE_FLAGS = ['--no-sandbox', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-default-apps', '--no-default-browser-check'];
// WebGPU on SwiftShader, including a WebGPU *canvas*: with only --enable-unsafe-webgpu
// (and with --disable-gpu) compute works, but presenting to a canvas destroys the device
// ("Could not find SharedImageBackingFactory ... WebgpuSwapChainTexture"); Vulkan
// compositing on SwiftShader gives the canvas a swap chain.
const WEBGPU = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-angle=vulkan'];
// No WebGPU adapter at all: the page must fall back to the CPU.
const NO_WEBGPU = ['--disable-gpu'];

const started = Date.now();
let passed = 0, failed = 0;
const log = (...a) => console.log(...a);
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    log(`ok   - ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  } catch (e) {
    failed++;
    log(`FAIL - ${name}: ${e && e.message ? e.message : e}`);
  }
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }

// |a - b| <= tol * max(1, |b|), element by element, over the numbers of two records.
function compare(what, got, want, tol) {
  const flat = (o, p = '') => typeof o === 'number' ? [[p, o]]
    : Array.isArray(o) ? o.flatMap((v, i) => flat(v, `${p}[${i}]`))
      : Object.entries(o).flatMap(([k, v]) => flat(v, p ? `${p}.${k}` : k));
  const g = new Map(flat(got)), w = flat(want);
  let worst = 0, where = '';
  for (const [k, b] of w) {
    const a = g.get(k);
    assert(typeof a === 'number', `${what}: ${k} missing`);
    const err = Math.abs(a - b) / Math.max(1, Math.abs(b));
    if (!(err <= worst)) { worst = err; where = `${k}: page ${a}, reference ${b}`; }
  }
  log(`       ${what}: worst relative difference ${worst.toExponential(2)} (${where})`);
  assert(worst <= tol, `${what} differs by ${worst.toExponential(2)} > ${tol} at ${where}`);
  return worst;
}

function nativeReference(query) {
  const out = execFileSync(reference, ['--models', models, query], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop());
}

const numbers = (s) => ({ data: { mean: s.data.mean, cov: s.data.cov }, latent: { mean: s.latent.mean, cov: s.latent.cov } });

async function waitServer() {
  for (let i = 0; i < 100; i++) {
    try { const r = await fetch(base); if (r.ok) return; } catch (_) { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no server on ${base}`);
}

async function launch(flags) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'indm-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: browserPath, headless: true, args: [...BASE_FLAGS, ...flags],
    viewport: { width: 1000, height: 1000 }, acceptDownloads: true,
  });
  ctx.on('close', () => {
    try { fs.rmSync(dir, { recursive: true, force: true }); } catch (_) { /* the browser may still write */ }
  });
  return ctx;
}

async function openPage(ctx, url, label) {
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => { errors.push(e.message); log(`       [${label} pageerror] ${e.message}`); });
  page.on('console', (m) => { if (m.type() === 'error') log(`       [${label} console.error] ${m.text()}`); });
  await page.goto(url);
  return { page, errors };
}

async function translateStatsFor(page, query) {
  await page.waitForFunction((q) => window.indmTranslateStats && window.indmTranslateStats.query === q, query, { timeout: runTimeout, polling: 250 });
  return page.evaluate(() => window.indmTranslateStats);
}

const trNumbers = (s) => ({ result: s.result, latent: s.latent, cycle_error: s.cycle_error, change: s.change });

async function statsFor(page, query) {
  await page.waitForFunction((q) => window.indmStats && window.indmStats.query === q, query, { timeout: runTimeout, polling: 250 });
  return page.evaluate(() => window.indmStats);
}

const server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dist], { stdio: 'ignore' });
const stop = () => { try { server.kill(); } catch (_) { /* gone */ } };
process.on('exit', stop);

// 10 000 particles on SwiftShader: few steps keep the test at a few minutes on 2 cores
// (PF-ODE Heun gives a clean picture in 12 steps; EM's noise is checked by the forward
// run and the hostile link's run, against the same reference).
const Q_GPU = 'v=1&view=2d&model=checkerboard&flow=indm&sampler=ode-heun&steps=12&seed=7&temp=1&t0=1&dir=reverse&n=10000';
const Q_BASE = Q_GPU.replace('flow=indm', 'flow=baseline');
// The forward SDE needs no network; the baseline's flow is the identity, so this run is cheap
// even with the 40 steps that bring EM's discretisation close to the prior.
const Q_FWD = 'v=1&view=2d&model=moons&flow=baseline&sampler=em&steps=40&seed=3&temp=1&t0=1&dir=forward&n=10000';
const Q_CPU = 'v=1&view=2d&model=moons&flow=indm&sampler=ode-heun&steps=30&seed=3&temp=0.9&t0=1&dir=reverse&n=1000';
// Translations: a U-Net evaluation is ~0.24 GFLOP per 32x32 image, ~1 s on SwiftShader
// and ~0.5 s in wasm, so few steps (translation and translation back: 2 (steps + 1)
// evaluations for SDEdit, 4 x 2 steps for DDIB with Heun).
const Q_TR = 'v=1&view=image&model=checkerboard&flow=indm&sampler=em&steps=200&seed=3&temp=1&t0=1&dir=reverse&isteps=10&image=dog-0001';
const Q_TR_CPU = 'v=1&view=image&model=checkerboard&flow=indm&sampler=em&steps=200&seed=1&temp=1&t0=1&dir=reverse&tdir=cat2dog&method=ddib&isteps=5&image=cat-0002';

try {
  assert(fs.existsSync(path.join(dist, 'index.html')), `${dist}/index.html is missing: run trunk build --release first`);
  assert(fs.existsSync(reference), `${reference} is missing: cargo build -p web`);
  await waitServer();

  const gpu = await launch(WEBGPU);
  let first = null, firstPage = null, baseline = null;
  await check('WebGPU: 2D sampling (10 000 particles, PF-ODE Heun 12 steps) equals the native f64 reference', async () => {
    const { page, errors } = await openPage(gpu, `${base}?${Q_GPU}`, 'gpu');
    const t0 = Date.now();
    const s = await statsFor(page, Q_GPU);
    log(`       page run ${((Date.now() - t0) / 1000).toFixed(1)}s; backend ${s.backend}; adapter ${s.adapter}; ${s.msPerStep.toFixed(2)} ms/step; ${(s.particleStepsPerSec / 1e3).toFixed(1)} k particle-steps/s`);
    await page.screenshot({ path: path.join(artifacts, 'webgpu-checkerboard-indm.png') });
    assert(s.backend === 'webgpu', `backend is ${s.backend}`);
    assert(s.particles === 10000 && s.steps === 12 && s.seed === 7, `settings differ from the link: ${s.particles} particles, ${s.steps} steps, seed ${s.seed}`);
    assert(s.data.non_finite === 0, 'non-finite particles');
    const ref = nativeReference(Q_GPU);
    compare('data/latent mean and covariance', numbers(s), numbers(ref), 1e-3);
    compare('first particles', { f: s.data.first }, { f: ref.data.first }, 2e-2);
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
    const fallbackVisible = await page.isVisible('#fallback');
    assert(!fallbackVisible, 'the CPU-fallback notice shows although WebGPU works');
    first = s; firstPage = page;
  });

  await check('PNG export of the current view', async () => {
    const [dl] = await Promise.all([firstPage.waitForEvent('download', { timeout: 30000 }), firstPage.click('#export-png')]);
    const file = path.join(artifacts, 'export.png');
    await dl.saveAs(file);
    const b = fs.readFileSync(file);
    assert(b.subarray(1, 4).toString() === 'PNG', 'not a PNG');
    assert(b.length > 10000, `PNG is only ${b.length} bytes (blank canvas?)`);
    log(`       ${dl.suggestedFilename()} ${b.length} bytes`);
  });

  await check('WebM export of the trajectory animation', async () => {
    const [dl] = await Promise.all([firstPage.waitForEvent('download', { timeout: 60000 }), firstPage.click('#export-webm')]);
    const file = path.join(artifacts, 'export.webm');
    await dl.saveAs(file);
    const b = fs.readFileSync(file);
    assert(b.length > 2000, `WebM is only ${b.length} bytes`);
    assert(b.readUInt32BE(0) === 0x1a45dfa3, 'not a WebM (EBML) file');
    log(`       ${dl.suggestedFilename()} ${b.length} bytes`);
  });

  await check('INDM vs baseline toggle keeps the same noise', async () => {
    await firstPage.click('#flow-baseline');
    const s = await statsFor(firstPage, Q_BASE);
    await firstPage.screenshot({ path: path.join(artifacts, 'webgpu-checkerboard-baseline.png') });
    compare('prior draw (first latent state)', { start: s.start }, { start: first.start }, 1e-6);
    const ref = nativeReference(Q_BASE);
    compare('baseline vs its native reference', numbers(s), numbers(ref), 1e-3);
    const d = Math.abs(s.data.cov[0] - first.data.cov[0]) + Math.abs(s.data.cov[2] - first.data.cov[2])
      + Math.abs(s.data.mean[0] - first.data.mean[0]) + Math.abs(s.data.mean[1] - first.data.mean[1]);
    assert(d > 1e-3, 'INDM and baseline gave identical samples: the toggle changed nothing');
    baseline = s;
  });

  await check('share link reproduces the same numbers', async () => {
    // The link of the page as it is now (after the toggle: the baseline, whose identity
    // flow makes the rerun cheap on SwiftShader), opened in a new tab.
    assert(firstPage && baseline, 'no baseline run');
    const href = await firstPage.$eval('#share', (a) => a.href);
    assert(href.endsWith(`?${Q_BASE}`), `share link ${href} is not the canonical query`);
    const { page, errors } = await openPage(gpu, href, 'share');
    const s = await statsFor(page, Q_BASE);
    compare('reopened link vs the run it was copied from', numbers(s), numbers(baseline), 1e-6);
    compare('first particles', { f: s.data.first }, { f: baseline.data.first }, 1e-6);
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
    await page.close();
  });

  await check('forward (noising) direction reaches the prior and equals the reference', async () => {
    const { page } = await openPage(gpu, `${base}?${Q_FWD}`, 'forward');
    const s = await statsFor(page, Q_FWD);
    await page.screenshot({ path: path.join(artifacts, 'webgpu-moons-forward.png') });
    const z = s.latent;
    assert(Math.abs(z.mean[0]) < 0.1 && Math.abs(z.mean[1]) < 0.1, `latent mean ${z.mean}`);
    assert(Math.abs(z.cov[0] - 1) < 0.15 && Math.abs(z.cov[2] - 1) < 0.15, `latent cov ${z.cov}`);
    compare('forward run', numbers(s), numbers(nativeReference(Q_FWD)), 1e-3);
    await page.close();
  });

  await check('hostile link: defaults for bad fields, a visible notice, nothing injected', async () => {
    const hostile = 'v=1&model=%3Cimg%20src%3Dx%20onerror%3Dwindow.__pwned%3D1%3E&temp=NaN&seed=1e999&sampler=rk45&steps=20&n=2000&zoom=9';
    const { page } = await openPage(gpu, `${base}?${hostile}`, 'hostile');
    const want = 'v=1&view=2d&model=checkerboard&flow=indm&sampler=em&steps=20&seed=0&temp=1&t0=1&dir=reverse&n=2000';
    const s = await statsFor(page, want);
    assert(await page.isVisible('#notice'), 'no visible notice');
    const text = await page.textContent('#notice');
    for (const w of ['invalid model', 'invalid temp', 'invalid seed', 'invalid sampler', "unknown setting 'zoom'"]) {
      assert(text.includes(w), `notice lacks "${w}": ${text}`);
    }
    assert(await page.evaluate(() => window.__pwned === undefined), 'injected markup ran');
    assert(s.model === 'checkerboard' && s.seed === 0, 'bad fields did not fall back to defaults');
    compare('the defaults it ran (EM, 2000 particles) vs the native reference', numbers(s), numbers(nativeReference(want)), 1e-3);
    await page.screenshot({ path: path.join(artifacts, 'hostile-link.png') });
    await page.close();
  });

  await check('link of an unknown version: defaults and a notice', async () => {
    const { page } = await openPage(gpu, `${base}?v=999&model=moons&steps=5`, 'version');
    await page.waitForFunction(() => (document.getElementById('share')?.href || '').includes('v=1&'), null, { timeout: 60000 });
    const href = await page.$eval('#share', (a) => a.href);
    assert(href.includes('model=checkerboard') && href.includes('steps=200'), `not the defaults: ${href}`);
    const text = await page.textContent('#notice');
    assert(await page.isVisible('#notice') && text.includes('version'), `notice: ${text}`);
    await page.close();
  });
  await check('WebGPU: dog -> cat translation link (gallery dog-0001, SDEdit t0 = 0.5, 10 steps) equals the native f64 reference', async () => {
    const { page, errors } = await openPage(gpu, `${base}?${Q_TR}`, 'translate');
    const t0 = Date.now();
    const s = await translateStatsFor(page, Q_TR);
    log(`       page run ${((Date.now() - t0) / 1000).toFixed(1)}s; backend ${s.backend}; ${s.nfe} score-net evaluations in ${(s.ms / 1000).toFixed(1)} s; cycle error ${s.cycle_error.toFixed(4)}`);
    await page.screenshot({ path: path.join(artifacts, 'webgpu-translate-dog2cat.png') });
    assert(s.backend === 'webgpu', `backend is ${s.backend}`);
    assert(s.image === 'dog-0001' && s.steps === 10 && s.seed === 3 && s.method === 'sdedit', `settings differ from the link: ${JSON.stringify(s)}`);
    assert(Number.isFinite(s.cycle_error) && s.cycle_error >= 0 && s.cycle_error < 1, `cycle error ${s.cycle_error}`);
    const shown = Number(await page.textContent('#cycle-error'));
    assert(Math.abs(shown - s.cycle_error) < 1e-4, `the page shows cycle error ${shown}, the stats say ${s.cycle_error}`);
    const ref = nativeReference(Q_TR);
    // f32 on the GPU vs f64: the kernels agree with the f64 reference to ~1e-6 per layer
    // and whole SDEdit runs to ~3e-5 (shared/tests/gpu_image.rs); the statistics are
    // means over 3072 pixels in [0, 1] units, so 2e-3 leaves two orders of margin.
    compare('translation statistics', trNumbers(s), trNumbers(ref), 2e-3);
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
    // The 2D view is one click away, and the link keeps the translation settings.
    await page.click('#view-2d');
    await page.waitForFunction(() => (document.getElementById('share')?.href || '').includes('view=2d'), null, { timeout: 10000 });
    assert(await page.isVisible('#view-2d-panel') && !(await page.isVisible('#image-view')), 'the 2D tab did not switch');
    const href = await page.$eval('#share', (a) => a.href);
    assert(href.includes('image=dog-0001') && href.includes('isteps=10'), `2D link lost the translation settings: ${href}`);
    await page.close();
  });
  await gpu.close();

  const cpu = await launch(NO_WEBGPU);
  await check('without WebGPU: plain notice and the CPU fallback equals the reference', async () => {
    const { page, errors } = await openPage(cpu, `${base}?${Q_CPU}`, 'cpu');
    const s = await statsFor(page, Q_CPU);
    await page.screenshot({ path: path.join(artifacts, 'cpu-fallback-moons.png') });
    assert(s.backend === 'cpu-wasm', `backend is ${s.backend}`);
    assert(await page.isVisible('#fallback'), 'no visible fallback notice');
    const text = await page.textContent('#fallback');
    assert(/CPU/.test(text) && /WebGPU/.test(text), `fallback notice: ${text}`);
    log(`       notice: ${text}`);
    log(`       ${s.msPerStep.toFixed(2)} ms/step; ${(s.particleStepsPerSec / 1e3).toFixed(1)} k particle-steps/s`);
    compare('CPU fallback (f64 in wasm) vs native f64', numbers(s), numbers(nativeReference(Q_CPU)), 1e-9);
    compare('first particles', { f: s.data.first }, { f: nativeReference(Q_CPU).data.first }, 1e-9);
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
  });

  await check('without WebGPU: a link with no particle count uses the smaller CPU default', async () => {
    const q = 'v=1&model=8gaussians&sampler=em&steps=10&seed=1';
    const { page } = await openPage(cpu, `${base}?${q}`, 'cpu-default');
    await page.waitForFunction(() => window.indmStats && window.indmStats.model === '8gaussians', null, { timeout: runTimeout });
    const s = await page.evaluate(() => window.indmStats);
    assert(s.particles === 1000, `particles ${s.particles}`);
    await page.close();
  });
  await check('without WebGPU: DDIB cat -> dog on the CPU path (5 steps) equals the native f64 reference', async () => {
    const { page, errors } = await openPage(cpu, `${base}?${Q_TR_CPU}`, 'cpu-translate');
    const s = await translateStatsFor(page, Q_TR_CPU);
    await page.screenshot({ path: path.join(artifacts, 'cpu-translate-cat2dog-ddib.png') });
    assert(s.backend === 'cpu-wasm', `backend is ${s.backend}`);
    const status = await page.textContent('#fallback');
    assert(/CPU/.test(status), `no plain CPU notice: ${status}`);
    log(`       ${s.nfe} score-net evaluations in ${(s.ms / 1000).toFixed(1)} s (wasm, f64); cycle error ${s.cycle_error.toFixed(4)}`);
    assert(Number.isFinite(s.cycle_error), `cycle error ${s.cycle_error}`);
    // 5 DDIB steps are too few for a good image (the cycle error is large): the page says so.
    const notice = await page.textContent('#notice');
    assert(/DDIB with 5 steps/.test(notice), `no DDIB step-count warning: ${notice}`);
    compare('CPU translation (f64 in wasm) vs native f64', trNumbers(s), trNumbers(nativeReference(Q_TR_CPU)), 1e-9);
    // PNG export of the translation view: the four pictures side by side, 4x.
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 30000 }), page.click('#translate-png')]);
    const file = path.join(artifacts, 'export-translate.png');
    await dl.saveAs(file);
    const b = fs.readFileSync(file);
    assert(b.subarray(1, 4).toString() === 'PNG', 'translation export is not a PNG');
    assert(b.readUInt32BE(16) === 4 * 128 + 5 * 8 && b.readUInt32BE(20) === 128 + 2 * 8 + 20,
      `translation export is ${b.readUInt32BE(16)} x ${b.readUInt32BE(20)} pixels`);
    assert(b.length > 5000, `translation PNG is only ${b.length} bytes (blank?)`);
    assert(/cat2dog-ddib/.test(dl.suggestedFilename()), `export name ${dl.suggestedFilename()}`);
    log(`       ${dl.suggestedFilename()} ${b.length} bytes`);
    assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
    await page.close();
  });

  await check('translation view: hostile link falls back with notices; uploads are checked', async () => {
    const hostile = 'v=1&view=image&tdir=%3Cb%3Edog2bird&method=gan&it0=NaN&isteps=2&image=..%2F..%2Fetc%2Fpasswd&seed=5';
    const want = 'v=1&view=image&model=checkerboard&flow=indm&sampler=em&steps=200&seed=5&temp=1&t0=1&dir=reverse&isteps=5';
    const { page } = await openPage(cpu, `${base}?${hostile}`, 'cpu-hostile');
    const s = await translateStatsFor(page, want);
    const text = await page.textContent('#notice');
    for (const w of ['invalid tdir', 'invalid method', 'invalid it0', "isteps '2' is out of range", 'invalid image']) {
      assert(text.includes(w), `notice lacks "${w}": ${text}`);
    }
    assert(s.image === 'dog-0000' && s.direction === 'dog2cat', `defaults not used: ${s.image} ${s.direction}`);
    // An upload that is not an image: a message, nothing runs.
    await page.setInputFiles('#upload', { name: 'not-an-image.png', mimeType: 'image/png', buffer: Buffer.from('this is not a PNG') });
    await page.waitForFunction(() => /upload refused/.test(document.getElementById('translate-status')?.textContent || ''), null, { timeout: 30000 });
    assert((await page.textContent('#notice')).includes('cannot be decoded'), 'no decode message');
    // A real (non-square) image: centre-cropped, translated, and kept out of the link.
    const shot = path.join(artifacts, 'webgpu-translate-dog2cat.png');
    const png = fs.readFileSync(fs.existsSync(shot) ? shot : path.join(dist, 'gallery', 'cat-0003.png'));
    await page.setInputFiles('#upload', { name: 'screenshot.png', mimeType: 'image/png', buffer: png });
    await page.waitForFunction(() => window.indmTranslateStats && window.indmTranslateStats.image === 'upload', null, { timeout: runTimeout, polling: 250 });
    const u = await page.evaluate(() => window.indmTranslateStats);
    assert(Number.isFinite(u.cycle_error) && Number.isFinite(u.result.mean), 'upload run gave no numbers');
    assert(await page.isVisible('#upload-note'), 'no note that uploads are not in the link');
    const href = await page.$eval('#share', (a) => a.href);
    assert(!href.includes('upload'), `the link names the upload: ${href}`);
    await page.screenshot({ path: path.join(artifacts, 'cpu-translate-upload.png') });
    await page.close();
  });
  await cpu.close();
} catch (e) {
  failed++;
  log(`FAIL - setup: ${e && e.stack ? e.stack : e}`);
} finally {
  stop();
}
log(`screenshots in ${artifacts}`);
log(`${passed} passed, ${failed} failed (${((Date.now() - started) / 1000).toFixed(0)}s)`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);

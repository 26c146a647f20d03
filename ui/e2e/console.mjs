// The console in headless Chromium, driven by playwright-core; ui/browser_test.go
// starts the proxy and the remote registry and runs this script twice:
//   PHASE=mirrors: log in, create a pull mirror (Connect, Save & Apply), see
//     its tags arrive and its job done with the tags in the log; create a push
//     mirror with a tag rule; see the dashboard show the test's pulls (most
//     pulled, with counts) and the upstream's health.
//   PHASE=push: after the test pushed dev/app:release-1 and :scratch, see the
//     push_mirror_tag job for release-1 done in the job list and its log.
// Every wait is bounded; a failed check exits 1 with a screenshot.
import { chromium } from "playwright-core";
import path from "node:path";

const base = process.env.CONSOLE_URL; // http://127.0.0.1:port/ui/
const remote = process.env.REMOTE_URL;
const out = process.env.SCREENSHOTS;
const phase = process.env.PHASE;
const T = 20000; // ms, any single wait

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
  timeout: 60000,
});
const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
page.setDefaultTimeout(T);
const consoleErrors = [];
// HTTP errors the test provokes (a wrong password, a refused Connect) are
// logged by Chromium as "Failed to load resource"; script errors are not.
page.on("console", (m) => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) consoleErrors.push(m.text()); });
page.on("pageerror", (e) => consoleErrors.push(String(e)));
page.on("dialog", (d) => d.accept());

const shot = async (name, full = true) => {
  await page.screenshot({ path: path.join(out, `${phase}-${name}.png`), fullPage: full });
  console.log(`screenshot ${phase}-${name}.png`);
};
const check = (cond, msg) => { if (!cond) throw new Error(msg); };

// waitText reloads url until the page's text contains want.
async function waitText(url, want, ms = 60000) {
  const until = Date.now() + ms;
  for (;;) {
    await page.goto(url);
    const text = await page.locator("main").innerText();
    if (text.includes(want)) return text;
    if (Date.now() > until) throw new Error(`${url}: no "${want}" after ${ms} ms; page says:\n${text}`);
    await page.waitForTimeout(500);
  }
}

// waitRow loads url until its job table has a row, and returns the table's text.
async function waitRow(url, ms = 60000) {
  const until = Date.now() + ms;
  for (;;) {
    await page.goto(url);
    if (await page.locator("#jobtable a").count() > 0) return await page.locator("#jobtable").innerText();
    if (Date.now() > until) throw new Error(`${url}: no job after ${ms} ms`);
    await page.waitForTimeout(500);
  }
}

async function login() {
  await page.goto(base);
  check(page.url().includes("/ui/login"), "an anonymous visit did not go to the login page");
  await shot("login");
  await page.getByLabel("User name").fill(process.env.CONSOLE_USER);
  await page.getByLabel("Password").fill("wrong password");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText("Wrong user name or password").waitFor();
  await page.getByLabel("Password").fill(process.env.CONSOLE_PASSWORD);
  // Keyboard only: Enter submits.
  await page.getByLabel("Password").press("Enter");
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
}

async function mirrorsPhase() {
  await login();

  // New pull mirror of team/app into dev/app.
  await page.goto(base + "mirrors?repo=dev/app");
  await shot("mirrors-empty");
  await page.getByRole("link", { name: "New mirror" }).click();
  await page.getByLabel("Pull from a remote registry").check();
  await page.getByLabel("Registry URL").fill("http://127.0.0.1:1");
  await page.getByLabel("Remote repository").fill("team/app");
  await page.getByRole("button", { name: "Connect" }).click();
  // A remote that is down: the error is next to the URL field, in words.
  await page.locator("#err-remoteHost .error").waitFor();
  await shot("mirror-connect-error");
  await page.getByLabel("Registry URL").fill(remote);
  await page.getByRole("button", { name: "Connect" }).click();
  await page.getByText("Connected: the remote registry accepted these settings.").waitFor();
  check(await page.locator("#err-remoteHost .error").count() === 0, "the old error stayed after a good Connect");
  await shot("mirror-connected");
  await page.getByRole("button", { name: "Save & Apply" }).click();
  await page.getByText("Mirror saved; jobs are copying").waitFor();
  await shot("mirrors-pull");

  // The job runs and copies both tags; its log says so.
  // (The filter form names poll_mirror and done too: wait for a row of the table.)
  const jobs = await waitRow(base + "jobs?action=poll_mirror&status=done");
  check(jobs.includes("done") && jobs.includes("poll_mirror"), `no done poll_mirror job:\n${jobs}`);
  await shot("jobs");
  await page.locator("#jobtable a").first().click();
  await page.getByRole("heading", { name: "Log" }).waitFor();
  const log = await page.locator("#joblog").innerText();
  check(log.includes("v1") && log.includes("v2"), `the poll job's log does not name v1 and v2:\n${log}`);
  await shot("job-log");

  // The tags arrived in dev/app.
  const repo = await waitText(base + "repository?name=dev/app", "v2");
  check(repo.includes("v1") && repo.includes("sha256:"), "dev/app lacks v1 or its digest");
  await shot("repository-dev-app");

  // A push mirror of dev/app to the remote's pushed/app for tags release-*.
  await page.goto(base + "mirrors/edit?repo=dev/app");
  await page.getByLabel("Push to a remote registry").check();
  await page.getByLabel("Registry URL").fill(remote);
  await page.getByLabel("Remote repository").fill("pushed/app");
  await page.locator("#ruleField0").selectOption("tag");
  await page.locator("#ruleOperator0").selectOption("starts_with");
  await page.locator("#ruleValues0").fill("release-");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.getByText("Mirror saved.").waitFor();
  const mirrors = await page.locator("main").innerText();
  check(mirrors.includes("push to") && mirrors.includes("tag starts_with release-"), `push mirror not listed:\n${mirrors}`);
  await shot("mirrors-both");

  // Search of repositories.
  await page.goto(base + "repositories");
  await page.getByLabel("Name contains").fill("busy");
  await page.getByLabel("Name contains").press("Enter");
  await page.getByRole("link", { name: "library/busybox" }).waitFor();
  check(await page.getByRole("link", { name: "team/app" }).count() === 0, "the search did not filter");
  await shot("repositories-search");
  await page.getByRole("link", { name: "library/busybox" }).click();
  await page.getByText("latest").first().waitFor();
  await shot("repository-cached");

  // The dashboard shows the test's pulls.
  await page.goto(base);
  const dash = await page.locator("main").innerText();
  check(!dash.includes("no pulls yet"), "the dashboard shows no pulls");
  check(/Hit ratio since start: \d/.test(dash), `no hit ratio:\n${dash}`);
  check(/library\/busybox\s+2 pulls/.test(dash) && /team\/app\s+1 pull\b/.test(dash),
    `the most pulled repositories are not on the dashboard with their counts:\n${dash}`);
  const badge = await page.locator("article.upstream .badge").first().innerText();
  check(badge === "ok", `the upstream's health badge says "${badge}", not ok`);
  check(await page.locator("svg.chart").count() >= 6, "the dashboard lacks its charts");
  await shot("dashboard");

  // Phone width.
  await page.setViewportSize({ width: 375, height: 800 });
  await page.goto(base + "mirrors/edit?repo=dev/app");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `the form is ${overflow}px wider than a phone`);
  await shot("phone-mirror-form");
  await page.goto(base);
  const dashOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(dashOverflow <= 1, `the dashboard is ${dashOverflow}px wider than a phone`);
  await shot("phone-dashboard");
}

// liveJobList opens the poll_mirror job list while no job is active, starts a
// job as the Run now form would (posted from the page's script, so the page
// stays), and waits for it to appear in the list, which is never reloaded.
async function liveJobList() {
  await page.goto(base + "jobs?action=poll_mirror");
  const before = await page.locator("#jobtable a").count();
  await page.evaluate(() => { window.__notReloaded = true; });
  const status = await page.evaluate(async () => {
    const csrf = document.querySelector('form[action="/ui/jobs/run"] input[name="csrf"]').value;
    const r = await fetch("/ui/jobs/run", { method: "POST", body: new URLSearchParams({ csrf }) });
    return r.status;
  });
  check(status === 200, `Run now answered ${status}`);
  const until = Date.now() + 30000;
  while (await page.locator("#jobtable a").count() <= before) {
    if (Date.now() > until) throw new Error(`the job list did not show the new poll_mirror job within 30 s without a reload (${before} rows)`);
    await page.waitForTimeout(500);
  }
  check(await page.evaluate(() => window.__notReloaded === true), "the job list was reloaded, not updated in place");
}

async function pushPhase() {
  await login();
  // The job list refreshes itself: open it once and wait, without reloading,
  // for the job to appear and show done. A marker on the window proves that
  // the page was never reloaded.
  await page.goto(base + "jobs?action=push_mirror_tag");
  await page.evaluate(() => { window.__notReloaded = true; });
  const until = Date.now() + 60000;
  for (;;) {
    const text = await page.locator("#jobtable").innerText();
    if (text.includes("release-1") && text.includes("done")) break;
    if (Date.now() > until) throw new Error(`no done push job for release-1 without a reload:\n${text}`);
    await page.waitForTimeout(500);
  }
  check(await page.evaluate(() => window.__notReloaded === true), "the job list was reloaded, not updated in place");
  await liveJobList();
  const table = await page.locator("#jobtable").innerText();
  check(!table.includes("tag=scratch"), "a push job for a tag the rule does not select");
  await shot("jobs-push");
  await page.locator("#jobtable a").first().click();
  await page.getByRole("heading", { name: "Log" }).waitFor();
  await shot("job-push-log");
  await page.goto(base);
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
  // The last hour's charts fill in once the sampler has two samples (one every
  // 10 s); the last day's need 5 minutes, longer than this test.
  const chartsUntil = Date.now() + 30000;
  while (await page.locator("svg.chart").first().locator("polyline").count() === 0) {
    if (Date.now() > chartsUntil) throw new Error("the dashboard's request chart has no line after 30 s");
    await page.waitForTimeout(1000);
    await page.reload();
  }
  await shot("dashboard-after");
}

try {
  if (phase === "mirrors") await mirrorsPhase();
  else if (phase === "push") await pushPhase();
  else throw new Error(`PHASE must be mirrors or push, not ${phase}`);
  check(consoleErrors.length === 0, `errors in the browser console: ${consoleErrors.join("; ")}`);
  console.log(`phase ${phase}: ok`);
} catch (e) {
  console.error(`phase ${phase}: FAILED: ${e.message}`);
  try { await shot("failure"); } catch {}
  process.exitCode = 1;
} finally {
  await browser.close();
}

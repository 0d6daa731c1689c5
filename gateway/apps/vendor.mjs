// Copies the browser files the apps use from node_modules into static/vendor (committed),
// so the gateway serves them itself: no CDN at run time. Run: npm ci && npm run vendor.
//
// nhsuk-frontend's CSS is changed in two ways only: the @font-face rules that load the
// licensed Frutiger font from assets.nhs.uk are dropped (the strict Content-Security-Policy
// allows fonts from the gateway only; the design system's own fallback, Arial, is used), and
// its root-relative image URLs (/assets/images/...) are made relative to the CSS file.
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const out = join(here, "static", "vendor");
const stripMap = (text) => text.replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, "\n").replace(/\/\*# sourceMappingURL=\S+ \*\/\s*$/, "\n");

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "nhsuk", "assets", "images"), { recursive: true });
mkdirSync(join(out, "fhirclient"), { recursive: true });

const nhsuk = join(modules, "nhsuk-frontend");
const dist = join(nhsuk, "dist", "nhsuk");
let css = readFileSync(join(dist, "nhsuk-frontend.min.css"), "utf8");
css = css.replace(/@font-face\{[^}]*assets\.nhs\.uk[^}]*\}/g, "");
css = css.replaceAll("url(/assets/images/", "url(assets/images/");
if (/https?:\/\//.test(css.replace(/http:\/\/www\.w3\.org\/2000\/svg/g, ""))) {
  throw new Error("nhsuk-frontend CSS still refers to another origin");
}
writeFileSync(join(out, "nhsuk", "nhsuk-frontend.min.css"), stripMap(css));
writeFileSync(join(out, "nhsuk", "nhsuk-frontend.min.js"), stripMap(readFileSync(join(dist, "nhsuk-frontend.min.js"), "utf8")));
for (const name of readdirSync(join(dist, "assets", "images"))) {
  if (name.endsWith(".svg") || name === "favicon.ico") {
    copyFileSync(join(dist, "assets", "images", name), join(out, "nhsuk", "assets", "images", name));
  }
}
const version = (dir) => JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version;
writeFileSync(join(out, "nhsuk", "VERSION"), `nhsuk-frontend ${version(nhsuk)} (MIT licence, NHS England)\n`);

const fhirclient = join(modules, "fhirclient");
writeFileSync(join(out, "fhirclient", "fhir-client.pure.min.js"), stripMap(readFileSync(join(fhirclient, "build", "fhir-client.pure.min.js"), "utf8")));
copyFileSync(join(fhirclient, "build", "fhir-client.pure.min.js.LICENSE.txt"), join(out, "fhirclient", "THIRD-PARTY-LICENSES.txt"));
copyFileSync(join(fhirclient, "LICENSE"), join(out, "fhirclient", "LICENSE"));
writeFileSync(join(out, "fhirclient", "VERSION"), `fhirclient ${version(fhirclient)} (Apache-2.0, SMART Health IT)\n`);
console.log("vendored into", out);

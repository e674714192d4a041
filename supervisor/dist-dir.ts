// The dist/ directory, found from this file's place. The supervisor also runs
// as one bundle (dist/supervisor/bundle.js), where every module's
// import.meta.url is the bundle's: a path relative to a module two folders
// down (dist/supervisor/workers/) would miss by one level there. This file
// and the bundle sit in the same folder, so the path holds either way.
import { fileURLToPath } from "node:url";

export const distDir = fileURLToPath(new URL("../", import.meta.url));

// Every fuzz target, by name: `make fuzz` runs them, `make test` replays their
// stored cases. A new target is one import and one entry here.
import type { FuzzTarget } from "../target.js";
import { configTarget } from "./config.js";
import { channelTarget } from "./channel.js";
import { controlTarget } from "./control.js";
import { adminTarget } from "./admin.js";

export const targets: FuzzTarget[] = [configTarget, controlTarget, adminTarget, channelTarget];

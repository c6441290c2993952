// A dedicated worker: the only place browsers offer OPFS sync access handles, which OpfsIO uses
// for its writes there. Runs the IO checks on request and posts the results back.
import { runIOChecks } from "./io-checks.js";

self.onmessage = async () => {
  self.postMessage(await runIOChecks("opfs-worker"));
};

import { offlineOpenApiDocument } from "../openapi.js";
import { wantsHelp } from "./usage.js";

export async function run(args: string[]): Promise<void> {
  wantsHelp(args, "usage: tally openapi   prints the OpenAPI 3.1 document tally serves at /openapi.json");
  process.stdout.write(`${JSON.stringify(await offlineOpenApiDocument(), null, 2)}\n`);
}
